// Everything the bench starts is registered here and undone in reverse order: on the normal
// path, on an error, on SIGINT/SIGTERM, and (what can be done synchronously) at process exit.

type Step = () => void | Promise<void>;

export class Cleanup {
  private readonly steps: { what: string; step: Step }[] = [];

  add(what: string, step: Step): void {
    this.steps.push({ what, step });
  }

  /** Runs every step not yet run, last added first; a failing step does not stop the others. */
  async run(): Promise<void> {
    for (let s = this.steps.pop(); s; s = this.steps.pop()) {
      try {
        await s.step();
      } catch (err) {
        process.stderr.write(`cleanup: ${s.what}: ${(err as Error).message}\n`);
      }
    }
  }

  /** At process exit nothing can be awaited: starts every step (kills, writes are synchronous). */
  runNow(): void {
    for (let s = this.steps.pop(); s; s = this.steps.pop()) {
      try {
        void Promise.resolve(s.step()).catch(() => undefined);
      } catch {
        // exiting anyway
      }
    }
  }

  /** Undo on SIGINT/SIGTERM (then exit 128 + signal) and at exit. */
  installHandlers(): void {
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      process.once(signal, () => {
        process.stderr.write(`\n${signal}: cleaning up\n`);
        void this.run().finally(() => process.exit(code));
      });
    }
    process.once('exit', () => {
      this.runNow();
    });
  }
}
