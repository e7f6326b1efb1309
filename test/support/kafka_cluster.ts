import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brokerJava, renderBrokerConfig } from "./private_kafka";
import { freePort, ROOT } from "./process";

/**
 * A private three-node KRaft cluster (each node broker and controller), from the jars
 * ./scripts/services resolved into .kafka/libs and the settings ./scripts/services up
 * --kafka-cluster uses: infra/kafka/broker.properties with infra/kafka/cluster.properties
 * appended (replication factor 3, min.insync.replicas 2). A test may SIGKILL a node and start
 * it again without disturbing the shared broker other files use.
 */
export interface KafkaCluster {
  brokers: string[];
  /** Node ids 1..3; `brokers[id - 1]` is that node's address. */
  kill(nodeId: number): Promise<void>;
  start(nodeId: number): Promise<void>;
  running(nodeId: number): boolean;
  remove(): Promise<void>;
}

const CLUSTER_TEMPLATE = join(ROOT, "infra", "kafka", "cluster.properties");

/** The rendered server.properties of node `nodeId` of a cluster. */
export function clusterNodeConfig(node: {
  nodeId: number;
  port: number;
  controllerPort: number;
  voters: string;
  dataDir: string;
}): string {
  const base = renderBrokerConfig({
    CONTROLLER: `127.0.0.1:${node.controllerPort}`,
    LISTENERS: `PLAINTEXT://127.0.0.1:${node.port},CONTROLLER://127.0.0.1:${node.controllerPort}`,
    ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${node.port}`,
    LOG_DIRS: node.dataDir,
  });
  const overlay = spawnSync(
    "bash",
    [join(ROOT, "infra", "kafka", "render-broker-config"), CLUSTER_TEMPLATE],
    {
      env: {
        ...process.env,
        BROKER_NODE_ID: String(node.nodeId),
        BROKER_QUORUM_VOTERS: node.voters,
      },
      encoding: "utf8",
    },
  );
  if (overlay.status !== 0)
    throw new Error(`rendering cluster.properties failed:\n${overlay.stderr}`);
  return `${base}${overlay.stdout}`;
}

export async function createKafkaCluster(): Promise<KafkaCluster> {
  const dir = mkdtempSync(join(tmpdir(), "fs-kafka-cluster-"));
  const ids = [1, 2, 3];
  const ports: { port: number; controllerPort: number }[] = [];
  for (const _ of ids) ports.push({ port: await freePort(), controllerPort: await freePort() });
  const voters = ids
    .map((id) => `${id}@127.0.0.1:${(ports[id - 1] as { controllerPort: number }).controllerPort}`)
    .join(",");
  // Three JVMs on two cores: the serial GC and the C1 compiler start them faster.
  const java = brokerJava(dir, ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]);
  const clusterId = randomBytes(16).toString("base64url");
  const configs = ids.map((id) => {
    const { port, controllerPort } = ports[id - 1] as { port: number; controllerPort: number };
    const dataDir = join(dir, `node-${id}`);
    mkdirSync(dataDir);
    const file = join(dir, `server-${id}.properties`);
    writeFileSync(file, clusterNodeConfig({ nodeId: id, port, controllerPort, voters, dataDir }));
    return file;
  });
  // Formatting is one JVM per node: run them side by side.
  await Promise.all(
    configs.map(
      (config) =>
        new Promise<void>((resolve, reject) => {
          const format = spawn(
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
            { stdio: ["ignore", "pipe", "pipe"] },
          );
          let output = "";
          format.stdout?.on("data", (c) => {
            output += c;
          });
          format.stderr?.on("data", (c) => {
            output += c;
          });
          format.once("exit", (code) =>
            code === 0 ? resolve() : reject(new Error(`formatting failed (${code}):\n${output}`)),
          );
        }),
    ),
  );

  const children = new Map<number, ChildProcess>();
  const kill = async (id: number) => {
    const proc = children.get(id);
    children.delete(id);
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await exited;
  };
  const start = (id: number) => {
    const proc = spawn("java", java(["kafka.Kafka", configs[id - 1] as string]), {
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.set(id, proc);
    let output = "";
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`cluster node ${id} did not start:\n${output.slice(-4000)}`)),
        120_000,
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
        reject(new Error(`cluster node ${id} exited with ${code}:\n${output.slice(-4000)}`));
      });
    });
  };
  const remove = async () => {
    for (const id of ids) await kill(id);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // A node logs "Kafka Server started" only once a quorum of controllers answers.
    await Promise.all(ids.map(start));
  } catch (error) {
    await remove();
    throw error;
  }
  return {
    brokers: ports.map(({ port }) => `127.0.0.1:${port}`),
    kill,
    start,
    running: (id) => {
      const proc = children.get(id);
      return proc !== undefined && proc.exitCode === null;
    },
    remove,
  };
}
