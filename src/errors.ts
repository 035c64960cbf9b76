/**
 * An error caused by the user's input or environment (bad flag, bad file, missing adapter). The CLI
 * prints its message as one line, with no stack trace, and exits with status 2.
 */
export class UserError extends Error {
  /** @param message one line naming the problem and the fix */
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}
