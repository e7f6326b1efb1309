import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BUN = `${ROOT}node_modules/.bin/bun`;

/**
 * One service process (`bun src/main.ts` with some ROLES), its output kept for a post-mortem.
 * `launcher` runs it through a command that execs it (the chaos campaign's
 * `ip netns exec <name>`), so the pid signalled is still the service's.
 */
export class ServiceProcess {
  private child: ChildProcess | undefined;
  private log = "";

  constructor(
    readonly name: string,
    private readonly env: Record<string, string>,
    private readonly launcher: string[] = [],
  ) {}

  start() {
    const [command = BUN, ...args] = [...this.launcher, BUN, "src/main.ts"];
    const child = spawn(command, args, {
      cwd: ROOT,
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.child = child;
  }

  /** Resolves when the process logged that its roles started; rejects if it exits first. */
  async started(timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.log.includes('"msg":"started"')) {
      if (this.child?.exitCode !== null && this.child?.exitCode !== undefined) {
        throw new Error(`${this.name} exited with ${this.child.exitCode}:\n${this.log}`);
      }
      if (Date.now() > deadline) throw new Error(`${this.name} did not start:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGKILL: no shutdown, no offset commit, no lock release — a crash. */
  async kill() {
    await this.signal("SIGKILL");
  }

  async stop() {
    await this.signal("SIGTERM");
  }

  /** SIGSTOP: frozen mid-whatever (locks held, requests half answered) until thaw(). */
  freeze() {
    this.child?.kill("SIGSTOP");
  }

  /** SIGCONT after freeze(). */
  thaw() {
    this.child?.kill("SIGCONT");
  }

  /** Whether the process runs (started and not exited). */
  alive() {
    const child = this.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  output() {
    return this.log;
  }

  private async signal(signal: NodeJS.Signals) {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await exited;
    this.log = "";
  }
}

export { freePort } from "../runtime/free_port";
