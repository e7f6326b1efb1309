import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { privateBrokerConfig, renderBrokerConfig } from "../support/private_kafka";
import { ROOT } from "../support/process";

// Store-free: reads the repository's files and runs the renderers, starts no broker.
// infra/kafka/broker.properties is the one copy of the broker settings; every consumer must
// produce exactly it, with nothing but its placeholders filled in.

const root = ROOT.replace(/\/$/, "");
const read = (path: string) => readFileSync(join(root, path), "utf8");
const PLACEHOLDER = /\{\{([A-Z][A-Z0-9_]*)\}\}/g;

/** key=value pairs in file order (duplicates kept, so a repeated key shows up). */
function properties(text: string): [string, string][] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#") && !line.startsWith("!"))
    .map((line) => {
      const eq = line.indexOf("=");
      return [line.slice(0, eq), line.slice(eq + 1)];
    });
}

const template = properties(read("infra/kafka/broker.properties"));

/** The template with its placeholders filled in from `values`. */
function expectedFromTemplate(values: Record<string, string>): [string, string][] {
  return template.map(([key, value]) => [
    key,
    value.replace(PLACEHOLDER, (_, name: string) => values[name] ?? `<no value for ${name}>`),
  ]);
}

/** Listener names a broker with these properties uses must all be declared and mapped. */
function expectConsistentListeners(rendered: [string, string][]) {
  const get = (key: string) => new Map(rendered).get(key) ?? "";
  const names = (list: string) =>
    list
      .split(",")
      .filter(Boolean)
      .map((entry) => entry.split(":")[0] ?? "");
  const listeners = names(get("listeners"));
  const mapped = names(get("listener.security.protocol.map"));
  expect(mapped).toEqual(expect.arrayContaining(listeners));
  expect(listeners).toEqual(expect.arrayContaining(names(get("advertised.listeners"))));
  expect(listeners).toContain(get("controller.listener.names"));
  expect(listeners).toContain(get("inter.broker.listener.name"));
}

/** Runs SCRIPT with scripts/lib/services.sh sourced, as scripts/services does. */
function withServicesSh(script: string, env: Record<string, string> = {}): string {
  const result = spawnSync("bash", ["-c", `source scripts/lib/services.sh && ${script}`], {
    cwd: root,
    env: { ...process.env, ROOT: root, ...env },
    encoding: "utf8",
  });
  if (result.status !== 0) {
    throw new Error(`bash exited with ${result.status}: ${result.stderr}`);
  }
  return result.stdout;
}

/** The kafka service of docker-compose.yml: its text, mounts, variables and command. */
function composeKafka() {
  const compose = read("docker-compose.yml");
  const block = /^ {2}kafka:\n((?: {4}.*\n|\s*\n)*)/m.exec(compose)?.[1] ?? "";
  const environment = /^ {4}environment:\n((?: {6}.*\n)*)/m.exec(block)?.[1] ?? "";
  const variables = Object.fromEntries(
    [...environment.matchAll(/^ {6}([A-Z][A-Z0-9_]*): *(.*)$/gm)].map((m) => [m[1], m[2]]),
  );
  return {
    image: /^ {4}image: *(\S+)$/m.exec(block)?.[1] ?? "",
    infraMount: /"\.\/infra\/kafka:([^:"]+)(?::ro)?"/.exec(block)?.[1],
    variables: variables as Record<string, string>,
    block,
  };
}

describe("infra config: one source for the Kafka brokers", () => {
  it("names one Kafka version: the pom's, in docker-compose.yml, scripts/services and the README", () => {
    const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(
      read("infra/kafka/pom.xml"),
    )?.[1];
    expect(version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(composeKafka().image).toBe(`apache/kafka:${version}`);
    expect(withServicesSh('printf %s "$KAFKA_VERSION"')).toBe(version);
    // Prose that names a version must name this one.
    const help = read("scripts/services").split("\n").slice(1, 14).join("\n");
    const localServices = read("README.md").split("## Local services")[1]?.split("\n## ")[0] ?? "";
    for (const text of [help, localServices]) {
      const named = [...text.matchAll(/Kafka (\d+\.\d+\.\d+)/g)].map((m) => m[1]);
      expect(named.length).toBeGreaterThan(0);
      expect(new Set(named)).toEqual(new Set([version]));
    }
  });

  it("scripts/services renders the template, filling in only the shared broker's listeners and data directory", () => {
    const rendered = withServicesSh("kafka_broker_properties", {
      KAFKA_PORT: "19092",
      KAFKA_CONTROLLER_PORT: "19093",
    });
    expect(properties(rendered)).toEqual(
      expectedFromTemplate({
        CONTROLLER: "127.0.0.1:19093",
        LISTENERS: "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        ADVERTISED_LISTENERS: "PLAINTEXT://127.0.0.1:19092",
        LOG_DIRS: `${root}/.kafka/data`,
      }),
    );
    expectConsistentListeners(properties(rendered));
  });

  it("a test's private broker renders the same template, only with its own ports and data directory", () => {
    const rendered = privateBrokerConfig({
      port: 19094,
      controllerPort: 19095,
      dataDir: "/tmp/fs-private-kafka-x/data",
    });
    expect(properties(rendered)).toEqual(
      expectedFromTemplate({
        CONTROLLER: "127.0.0.1:19095",
        LISTENERS: "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095",
        ADVERTISED_LISTENERS: "PLAINTEXT://127.0.0.1:19094",
        LOG_DIRS: "/tmp/fs-private-kafka-x/data",
      }),
    );
    expectConsistentListeners(properties(rendered));
  });

  it("the docker-compose broker renders the template in its container and sets no broker property of its own", () => {
    const kafka = composeKafka();
    const dir = kafka.infraMount;
    expect(dir).toBeDefined();
    expect(kafka.block).toContain(
      `${dir}/render-broker-config ${dir}/broker.properties >/mnt/shared/config/server.properties`,
    );
    // The image turns every KAFKA_* variable into a property that overrides the mounted file;
    // KAFKA_HEAP_OPTS is the one the JVM start script reads.
    const kafkaVariables = Object.keys(kafka.variables).filter((name) => name.startsWith("KAFKA_"));
    expect(kafkaVariables).toEqual(["KAFKA_HEAP_OPTS"]);

    const values = Object.fromEntries(
      Object.entries(kafka.variables)
        .filter(([name]) => name.startsWith("BROKER_"))
        .map(([name, value]) => [name.slice("BROKER_".length), value]),
    );
    const rendered = properties(renderBrokerConfig(values));
    expect(rendered).toEqual(expectedFromTemplate(values));
    expectConsistentListeners(rendered);
  });

  it("no consumer spells a broker property itself", () => {
    // What the renderings above cannot see: a consumer writing its own copy beside the
    // template (e.g. createPrivateKafka appending to the file it starts the broker with).
    for (const path of [
      "scripts/services",
      "scripts/lib/services.sh",
      "test/support/private_kafka.ts",
      "docker-compose.yml",
    ]) {
      const text = read(path);
      const spelled = template.map(([key]) => key).filter((key) => text.includes(`${key}=`));
      expect({ path, spelled }).toEqual({ path, spelled: [] });
    }
  });

  it("the renderer refuses to leave a placeholder empty", () => {
    expect(() => renderBrokerConfig({ CONTROLLER: "127.0.0.1:1" })).toThrow(
      /BROKER_\w+ is not set/,
    );
  });
});
