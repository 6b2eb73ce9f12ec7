// What a server binary offers, read from its --help (pflag style: "--name type" then the help
// text ending "(default X)"), so the bench can report a limit the server applies by default
// and run against checkouts that predate a flag.
import { spawnSync } from 'node:child_process';

export interface HelpFlag {
  present: boolean;
  /** The "(default X)" of its help text, when it has one. */
  default?: string;
}

/** The server's --help output (stdout and stderr), '' when it could not be run. */
export function serverHelp(bin: string): string {
  const r = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', timeout: 15_000 });
  return `${r.stdout}${r.stderr}`;
}

export function flagInHelp(help: string, flag: string): HelpFlag {
  const lines = help.split('\n');
  const name = new RegExp(`^\\s*--${flag.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&')}(\\s|=|$)`);
  const start = lines.findIndex((l) => name.test(l));
  if (start < 0) return { present: false };
  // The help text follows on the flag's line (Go's pflag) or the lines below (ours).
  for (let i = start; i < lines.length && (i === start || !/^\s*-/.test(lines[i] ?? '')); i++) {
    const m = /\(default ([^)]*)\)\s*$/.exec(lines[i] ?? '');
    if (m) return { present: true, default: m[1] };
  }
  return { present: true };
}
