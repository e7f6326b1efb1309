import { afterAll, beforeAll } from "vitest";
import type { Config } from "../../src/config";
import type { Db } from "../../src/db/client";
import { type App, createApp } from "../../src/http/app";
import type { Component } from "../../src/runtime/component";
import type { Services } from "../../src/services";
import { startAll, stopAll } from "./components";
import { createTestContext, type TestContext } from "./context";
import { createPrivateKafka, type PrivateKafka } from "./private_kafka";
import { type Child, startChild } from "./process";

export interface WorldOptions {
  /** Connect Kafka and create the namespace's topics. */
  kafka?: boolean;
  /** Extra environment, or a function that provides it first thing (a private broker's address). */
  env?: Record<string, string> | (() => Promise<Record<string, string>>);
  /** Service components (consumers, relay) running for the whole file, started in this order. */
  components?: (services: Services) => Component[];
}

/**
 * Everything a test file runs against: its namespace (database, Redis prefix, topics: see
 * createTestContext), the services over it, the HTTP app, and what the file starts (components,
 * child processes). `useWorld` builds it before the file's first test and takes it down after
 * the last, in one order under both runners: child processes killed, components stopped (last
 * started first), the file's own teardowns (last registered first), then the namespace dropped.
 * Its members are there once the file's tests (or later hooks) run.
 */
export interface World {
  readonly namespace: string;
  readonly databaseName: string;
  readonly config: Config;
  readonly services: Services;
  readonly db: Db;
  readonly app: App;
  /** An environment for a child process in the same namespace. */
  childEnv(extra?: Record<string, string>): Record<string, string>;
  /** Starts components now (also inside a test); they run until the file ends or `stop`. */
  start(components: Component[]): Promise<void>;
  /** Stops a running component: this one, or the last started with this name. */
  stop(component: Component | string): Promise<void>;
  /** Starts `bun <args>` in the namespace; killed at the end if it is still running. */
  startChild(args: string[], options?: { env?: Record<string, string>; stdin?: boolean }): Child;
  /** Runs `teardown` at the end: after the components stopped, before the namespace is dropped. */
  onCleanup(teardown: () => unknown): void;
}

export function useWorld(fileUrl: string, options: WorldOptions = {}): World {
  let ctx: TestContext | undefined;
  let app: App | undefined;
  const running: Component[] = [];
  const children: Child[] = [];
  const teardowns: (() => unknown)[] = [];
  const built = () => {
    if (!ctx || !app) throw new Error("the world is built in beforeAll: use it inside a test");
    return { ctx, app };
  };

  const world: World = {
    get namespace() {
      return built().ctx.namespace;
    },
    get databaseName() {
      return built().ctx.databaseName;
    },
    get config() {
      return built().ctx.config;
    },
    get services() {
      return built().ctx.services;
    },
    get db() {
      return built().ctx.services.database.db;
    },
    get app() {
      return built().app;
    },
    childEnv: (extra) => built().ctx.childEnv(extra),
    start: (components) => startAll(running, components),
    async stop(which) {
      const index = running.findLastIndex((c) =>
        typeof which === "string" ? c.name === which : c === which,
      );
      const [component] = index < 0 ? [] : running.splice(index, 1);
      if (!component) throw new Error(`no running component ${String(which)}`);
      await component.stop();
    },
    startChild(args, { env, stdin } = {}) {
      const child = startChild(args, world.childEnv(env), { stdin });
      children.push(child);
      return child;
    },
    onCleanup(teardown) {
      teardowns.push(teardown);
    },
  };

  beforeAll(async () => {
    const env = typeof options.env === "function" ? await options.env() : options.env;
    ctx = await createTestContext(fileUrl, { kafka: options.kafka, env });
    app = createApp(ctx.services);
    await world.start(options.components?.(ctx.services) ?? []);
  }, 120_000);

  afterAll(async () => {
    try {
      for (const child of children) {
        child.process.kill("SIGCONT"); // a child a test left stopped (SIGSTOP)
        child.process.kill("SIGKILL");
      }
      await stopAll(running);
      for (const teardown of teardowns.splice(0).reverse()) await teardown();
    } finally {
      await ctx?.cleanup();
    }
  }, 60_000);

  return world;
}

/**
 * useWorld on a Kafka broker of the file's own (private_kafka.ts), started before the world is
 * built and removed after it: for files that kill or freeze the broker. `kafka` stands for it
 * from the file's first test on.
 */
export function useWorldOnPrivateKafka(
  fileUrl: string,
  options: Omit<WorldOptions, "kafka" | "env"> & { env?: Record<string, string> } = {},
): { world: World; kafka: PrivateKafka } {
  let broker: PrivateKafka | undefined;
  const own = () => {
    if (!broker) throw new Error("the private broker is started in beforeAll: use it in a test");
    return broker;
  };
  const world = useWorld(fileUrl, {
    ...options,
    kafka: true,
    env: async () => {
      broker = await createPrivateKafka();
      await broker.start();
      return { ...options.env, KAFKA_BROKERS: broker.brokers.join(",") };
    },
  });
  world.onCleanup(() => broker?.remove());
  const kafka: PrivateKafka = {
    get brokers() {
      return own().brokers;
    },
    start: () => own().start(),
    kill: () => own().kill(),
    freeze: () => own().freeze(),
    thaw: () => own().thaw(),
    remove: () => own().remove(),
  };
  return { world, kafka };
}
