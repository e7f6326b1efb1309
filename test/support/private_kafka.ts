import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, ROOT } from "./process";

/**
 * A real single-node KRaft broker of the test's own, started from the jars that
 * ./scripts/services resolved into .kafka/libs, so a test can kill it (SIGKILL) and start it
 * again without disturbing the shared broker other test files use.
 */
export interface PrivateKafka {
  brokers: string[];
  start(): Promise<void>;
  kill(): Promise<void>;
  /** SIGSTOP: the broker holds every connection open and answers nothing until `thaw`. */
  freeze(): void;
  /** SIGCONT: the frozen broker carries on where it stopped. */
  thaw(): void;
  remove(): Promise<void>;
}

const LIBS = join(ROOT, ".kafka", "libs");
const BROKER_TEMPLATE = join(ROOT, "infra", "kafka", "broker.properties");
const RENDER_BROKER_CONFIG = join(ROOT, "infra", "kafka", "render-broker-config");

/**
 * infra/kafka/broker.properties with the placeholders filled in from `values` (LISTENERS →
 * BROKER_LISTENERS …), by the same renderer scripts/services and docker-compose.yml use.
 */
export function renderBrokerConfig(values: Record<string, string>): string {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const [name, value] of Object.entries(values)) env[`BROKER_${name}`] = value;
  const rendered = spawnSync("bash", [RENDER_BROKER_CONFIG, BROKER_TEMPLATE], {
    env,
    encoding: "utf8",
  });
  if (rendered.status !== 0) {
    throw new Error(
      `rendering infra/kafka/broker.properties failed (exit ${rendered.status}, ${rendered.error?.message ?? "no spawn error"}):\n${rendered.stderr}`,
    );
  }
  return rendered.stdout;
}

/**
 * The private broker's server.properties: the shared broker's settings, only its own ports and
 * data directory. Deliberately no overrides, so a test sees the broker the service runs against.
 */
export function privateBrokerConfig(broker: {
  port: number;
  controllerPort: number;
  dataDir: string;
}): string {
  const { port, controllerPort, dataDir } = broker;
  return renderBrokerConfig({
    CONTROLLER: `127.0.0.1:${controllerPort}`,
    LISTENERS: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${port}`,
    LOG_DIRS: dataDir,
  });
}

/**
 * The command line of a test broker's JVM (`java ...args`): small heap, warnings only (plus the
 * line that says a node started), the jars `./scripts/services up` fetched. Writes its log4j
 * file into `dir`. `jvm`: extra JVM options.
 */
export function brokerJava(dir: string, jvm: string[] = []): (args: string[]) => string[] {
  if (!existsSync(LIBS)) {
    throw new Error("Kafka jars are missing in .kafka/libs: run ./scripts/services up first");
  }
  const log4j = join(dir, "log4j.properties");
  writeFileSync(
    log4j,
    [
      "log4j.rootLogger=WARN, stdout",
      "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
      "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
      "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n",
      "log4j.logger.kafka.server.KafkaRaftServer=INFO",
      "",
    ].join("\n"),
  );
  return (args) => [
    "-Xmx256m",
    "-Xms128m",
    ...jvm,
    `-Dlog4j.configuration=file:${log4j}`,
    "-cp",
    `${LIBS}/*`,
    ...args,
  ];
}

export async function createPrivateKafka(): Promise<PrivateKafka> {
  const dir = mkdtempSync(join(tmpdir(), "fs-private-kafka-"));
  const [port, controllerPort] = [await freePort(), await freePort()];
  const config = join(dir, "server.properties");
  writeFileSync(config, privateBrokerConfig({ port, controllerPort, dataDir: join(dir, "data") }));
  const java = brokerJava(dir);
  mkdirSync(join(dir, "data"));
  // Formatting once failed in CI with exit 1 and no visible reason (the output was thrown
  // away): keep the output for the error, and try again, since nothing else has used the dir.
  const clusterId = randomBytes(16).toString("base64url");
  for (let attempt = 1; ; attempt++) {
    const format = spawnSync(
      "java",
      java([
        "kafka.tools.StorageTool",
        "format",
        "--ignore-formatted",
        "-t",
        clusterId,
        "-c",
        config,
      ]),
      { encoding: "utf8", timeout: 60_000 },
    );
    if (format.status === 0) break;
    if (attempt === 3) {
      throw new Error(
        `formatting the private broker's storage failed (exit ${format.status}, ${format.error?.message ?? "no spawn error"}):\n${format.stdout}${format.stderr}`,
      );
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }

  let child: ChildProcess | undefined;
  const kill = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await exited;
  };
  const signal = (name: "SIGSTOP" | "SIGCONT") => {
    if (!child || child.exitCode !== null) throw new Error(`no private broker to ${name}`);
    child.kill(name);
  };
  return {
    brokers: [`127.0.0.1:${port}`],
    async start() {
      const proc = spawn("java", java(["kafka.Kafka", config]), {
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = proc;
      let output = "";
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`private Kafka did not start:\n${output}`)),
          90_000,
        );
        const onData = (chunk: Buffer) => {
          output += chunk;
          if (output.includes("Kafka Server started")) {
            clearTimeout(timer);
            resolve();
          }
        };
        proc.stdout?.on("data", onData);
        proc.stderr?.on("data", onData);
        proc.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`private Kafka exited with ${code}:\n${output}`));
        });
      });
    },
    kill,
    freeze: () => signal("SIGSTOP"),
    thaw: () => signal("SIGCONT"),
    async remove() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
