/**
 * Where the tool's words go. Human lines go to stdout, or to stderr under --json so that stdout
 * carries only NDJSON events (one object per line) for scripts. Errors always go to stderr.
 */
export class Output {
  constructor(
    readonly json: boolean,
    private readonly stdout: NodeJS.WritableStream = process.stdout,
    private readonly stderr: NodeJS.WritableStream = process.stderr,
  ) {}

  info(line: string): void {
    (this.json ? this.stderr : this.stdout).write(line + "\n");
  }

  error(line: string): void {
    this.stderr.write(line + "\n");
  }

  event(type: string, fields: Record<string, unknown>): void {
    if (this.json) this.stdout.write(JSON.stringify({ event: type, time: new Date().toISOString(), ...fields }) + "\n");
  }
}
