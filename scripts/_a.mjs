import { WalFrameReader, readFileChunks, WalApplier } from '@ls/wal';
import { copyFileSync } from 'node:fs';
const which = process.argv[2];
const W = '/tmp/lstream-bench/wal-src.db.wal';
copyFileSync('/tmp/lstream-bench/wal-src.db', '/tmp/ap.db');
const t0 = performance.now();
if (which === 'read') { for await (const c of readFileChunks(W)) {} }
if (which === 'frames') { const r = new WalFrameReader(readFileChunks(W)); await r.header(); let n=0; for(;;){ let f=r.nextBuffered(); if(f===undefined) f=await r.next(); if(!f) break; n++; } }
if (which === 'apply-nosync') { const a = await WalApplier.open('/tmp/ap.db', { strict: true, fsync: false }); await a.apply(readFileChunks(W)); await a.close(); }
if (which === 'apply') { const a = await WalApplier.open('/tmp/ap.db', { strict: true }); await a.apply(readFileChunks(W)); await a.close(); }
console.log(which, (performance.now()-t0).toFixed(1));
