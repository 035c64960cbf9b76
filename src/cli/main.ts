/**
 * `sae`: the command-line entry point. Each command lives in its own file in src/cli/ and is
 * registered by one line in COMMANDS.
 *
 * Exit status: 0 success (and --help), 2 usage errors, UserErrors and faults of the environment
 * (a file the system refused, a failed GPU device; printed as one line `error: <message>`),
 * 130/143 for SIGINT/SIGTERM, 1 anything else (a bug: the full stack is printed).
 *
 * @example
 * ```sh
 * deno task sae train --steps 100 --name smoke
 * ```
 */

import { Command, CommanderError, type CommandUnknownOpts } from "@commander-js/extra-typings";
import denoJson from "../../deno.json" with { type: "json" };
import { Interrupted, UserError } from "../errors.ts";
import { GpuFailure } from "../gpu/device.ts";
import { exitOnInterrupt } from "../run/signals.ts";
import { ablateCommand } from "./ablate.ts";
import { exportCommand } from "./export.ts";
import { harvestCommand } from "./harvest.ts";
import { importCommand } from "./import.ts";
import { lmCommand } from "./lm.ts";
import { reportCommand } from "./report.ts";
import { evalCommand } from "./eval.ts";
import { synthCommand } from "./synth.ts";
import { trainCommand } from "./train.ts";
import { tuneCommand } from "./tune.ts";

/** Every subcommand's factory, one line each. */
const COMMANDS: (() => CommandUnknownOpts)[] = [
  trainCommand,
  ablateCommand,
  synthCommand,
  evalCommand,
  exportCommand,
  importCommand,
  reportCommand,
  lmCommand,
  harvestCommand,
  tuneCommand,
];

/** Where the CLI writes (injectable for tests). */
export interface CliIo {
  writeOut: (text: string) => void;
  writeErr: (text: string) => void;
}

const encoder = new TextEncoder();
const STDIO: CliIo = {
  writeOut: (text) => Deno.stdout.writeSync(encoder.encode(text)),
  writeErr: (text) => Deno.stderr.writeSync(encoder.encode(text)),
};

/** The `sae` program with every command registered. */
export function buildProgram(io: CliIo = STDIO): CommandUnknownOpts {
  const program = new Command("sae")
    .description("train and evaluate sparse autoencoders on language-model activations (WebGPU)")
    .version(denoJson.version, "-V, --version", "print the version and exit")
    .helpOption("-h, --help", "show help for a command and exit")
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({ writeOut: io.writeOut, writeErr: io.writeErr });
  for (const make of COMMANDS) {
    const cmd = make();
    // addCommand() does not pass settings down; exit handling and output must reach every command.
    cmd.copyInheritedSettings(program);
    program.addCommand(cmd);
  }
  return program;
}

/** Runs the CLI on `argv` (without the program name) and returns the exit status. */
export async function main(
  argv: string[],
  io: CliIo = STDIO,
  program: CommandUnknownOpts = buildProgram(io),
): Promise<number> {
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message (or the help).
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof UserError || isEnvironmentFault(err)) {
      io.writeErr(`error: ${(err as Error).message.replaceAll("\n", " ")}\n`);
      return 2;
    }
    if (err instanceof Interrupted) {
      // SIGINT/SIGTERM in a command that stops gracefully (train, ablate, harvest): say how to resume.
      io.writeErr(`${err.message}\n`);
      return err.exitCode;
    }
    io.writeErr(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

/**
 * Whether `err` is the environment's fault rather than a bug: an error the operating system
 * returned for a file (permission denied, no space left, not a directory, ...) or a failed GPU
 * device. Commands name the file where they can; this keeps any they do not to one line too.
 */
function isEnvironmentFault(err: unknown): boolean {
  if (err instanceof GpuFailure) return true;
  if (!(err instanceof Error)) return false;
  const os = [
    Deno.errors.NotFound,
    Deno.errors.PermissionDenied,
    Deno.errors.AlreadyExists,
    Deno.errors.IsADirectory,
    Deno.errors.NotADirectory,
    Deno.errors.WriteZero,
    Deno.errors.UnexpectedEof,
    Deno.errors.FilesystemLoop,
    Deno.errors.Busy,
  ];
  return os.some((cls) => err instanceof cls) || / \(os error \d+\)/.test(err.message);
}

if (import.meta.main) {
  exitOnInterrupt();
  Deno.exit(await main(Deno.args));
}
