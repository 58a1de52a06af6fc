import { LstreamError } from '@ls/core';

/** Raised for bad command-line usage; the CLI prints the command's usage after the message. */
export class UsageError extends LstreamError {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super('EUSAGE', message);
  }
}
