/** An error with the HTTP status the client should get; the message names the request field at fault. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(readonly statusCode: number, message: string) { super(message); }
}
