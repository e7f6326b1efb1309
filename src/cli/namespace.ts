import { dropNamespace } from "../namespace";
import { EXIT, runCli, UsageError } from "./support";

const USAGE = `bun run namespace drop --yes [--json]

drop deletes everything of NAMESPACE: the database of DATABASE_URL, the Redis keys
<NAMESPACE>:*, the Kafka topics and consumer groups <NAMESPACE>.*. Nothing of another
namespace is touched. Without --yes it names what it would drop and changes nothing (exit 64).
Typical use: after ./scripts/demo --keep, with the DATABASE_URL and NAMESPACE it printed.`;

const OPTIONS = { yes: { type: "boolean" }, json: { type: "boolean" } } as const;

await runCli(
  {
    usage: USAGE,
    environment: [
      "DATABASE_URL",
      "NAMESPACE",
      "REDIS_URL",
      "KAFKA_BROKERS",
      "LOG_LEVEL",
      "LOG_FORMAT",
    ],
    exitCodes: { ok: "dropped (also when there was nothing left to drop)" },
  },
  OPTIONS,
  async ({ command, values, target }, services) => {
    if (command !== "drop")
      throw new UsageError(command ? `unknown command "${command}"` : "drop?");
    if (!values.yes) {
      throw new UsageError(
        `this drops database ${target.database} and every key, topic and group of namespace ${target.namespace}; add --yes`,
      );
    }
    await services.connectKafka();
    const dropped = await dropNamespace(services);
    if (values.json) console.log(JSON.stringify({ ...dropped, target }));
    else
      console.log(
        `dropped database ${dropped.database}, ${dropped.keys} Redis keys, ` +
          `${dropped.topics.length} topics, ${dropped.groups.length} consumer groups of namespace ${target.namespace}`,
      );
    if (dropped.groupsLeft.length > 0) {
      console.error(
        `error: consumer groups still have members (stop the service first): ${dropped.groupsLeft.join(", ")}`,
      );
      return EXIT.failed;
    }
    return EXIT.ok;
  },
);
