import { z } from "zod";
import { LIMITS } from "../limits";
import { actOnDeadLetters, type DeadLetterAnswer } from "../reconcile/dead_letter_actions";
import { DEAD_LETTER_STATES, listDeadLetters } from "../reconcile/dead_letters";
import type { ConsoleApp } from "./env";
import {
  formOf,
  parseFields,
  queryOf,
  redirectWithNotice,
  requirePageScope,
  sessionOf,
} from "./guard";
import { ActionButton, Badge, Csrf, Layout, Num, SelectFilter, Time } from "./layout";
import { hasScope } from "./session";

/**
 * Dead letters: browse (reconcile:read) and re-drive (dlq:write), one message or all open ones
 * of a topic. Re-driving all is count-then-confirm, as the API: the first press shows how many
 * and a confirm button carrying the count's token.
 */

const Filters = z.object({
  topic: z.string().max(200).optional(),
  state: z.enum(DEAD_LETTER_STATES).optional(),
  notice: z.string().optional(),
});

const RedriveForm = z.object({
  topic: z.string().min(1).max(200),
  /** `<partition>:<offset>` of one dead letter; absent with `all`. */
  entry: z
    .string()
    .regex(/^[0-9]{1,10}:[0-9]{1,16}$/)
    .optional(),
  all: z.literal("1").optional(),
  confirm: z.string().max(64).optional(),
  reason: z.string().trim().max(LIMITS.reason).optional(),
});

export function registerDlqPages(app: ConsoleApp) {
  app.get("/dlq", requirePageScope("reconcile:read", "the dead letters"), async (c) => {
    const session = sessionOf(c);
    const q = queryOf(c, Filters);
    const page = await listDeadLetters(c.get("services").database.db, {
      ...(q.topic ? { topic: q.topic } : {}),
      ...(q.state ? { state: q.state } : {}),
      limit: 100,
    });
    const canRedrive = hasScope(session, "dlq:write");
    const openTopics = [
      ...new Set(page.items.filter((d) => d.state === "open").map((d) => d.topic)),
    ];
    return c.html(
      <Layout title="Dead letters" session={session} active="dlq" notice={q.notice}>
        <h1>Dead letters</h1>
        <p class="muted">
          Messages a consumer gave up on, newest failure first. Re-driving sends one back to its
          topic, where its consumer processes it again (a message whose effect is already in is a
          no-op there).
        </p>
        <form method="get" action="/console/dlq" class="filters">
          <SelectFilter label="state" name="state" options={DEAD_LETTER_STATES} value={q.state} />
          <label>
            topic
            <input name="topic" value={q.topic ?? ""} size={30} />
          </label>
          <button type="submit">Filter</button> <a href="/console/dlq">clear</a>
        </form>
        {page.items.length === 0 ? (
          <p class="muted" data-empty>
            No dead letter matches.
          </p>
        ) : (
          <table data-table="dlq">
            <thead>
              <tr>
                <th>topic</th>
                <th class="num">partition</th>
                <th class="num">offset</th>
                <th>consumer / event</th>
                <th>order</th>
                <th class="num">attempts</th>
                <th>error</th>
                <th>first failure</th>
                <th>last failure</th>
                <th>state</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {page.items.map((d) => (
                <tr data-dead-letter={`${d.topic}:${d.partition}:${d.offset}`}>
                  <td>{d.topic}</td>
                  <Num value={d.partition} />
                  <Num value={d.offset} />
                  <td class="wrap">
                    {d.consumer}
                    <div class="muted">
                      <code>{d.eventId}</code>
                    </div>
                  </td>
                  <td>
                    {d.orderId ? (
                      <a href={`/console/orders/${encodeURIComponent(d.orderId)}`}>
                        {d.orderId.slice(0, 8)}…
                      </a>
                    ) : (
                      "—"
                    )}
                  </td>
                  <Num value={d.attempts} />
                  <td class="wrap">{d.error}</td>
                  <td>
                    <Time at={d.firstFailureAt} />
                  </td>
                  <td>
                    <Time at={d.lastFailureAt} />
                  </td>
                  <td>
                    <Badge value={d.state} />
                    {d.handled && (
                      <div class="muted">
                        {d.handled.action} by {d.handled.by}
                        {d.handled.reason ? `: ${d.handled.reason}` : ""}
                      </div>
                    )}
                  </td>
                  <td>
                    {canRedrive &&
                      d.state === "open" &&
                      d.partition !== null &&
                      d.offset !== null && (
                        <ActionButton
                          session={session}
                          action="/console/dlq/redrive"
                          label="Re-drive"
                          fields={{ topic: d.topic, entry: `${d.partition}:${d.offset}` }}
                        />
                      )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {page.next && <p class="muted">Only the newest 100 are shown; filter to see others.</p>}
        {canRedrive &&
          openTopics.map((topic) => (
            <p>
              <ActionButton
                session={session}
                action="/console/dlq/redrive"
                label={`Re-drive every open dead letter of ${topic}…`}
                fields={{ topic, all: "1" }}
              />
            </p>
          ))}
      </Layout>,
    );
  });

  app.post("/dlq/redrive", requirePageScope("dlq:write", "re-driving dead letters"), async (c) => {
    const session = sessionOf(c);
    const form = parseFields(RedriveForm, await formOf(c), "form");
    const [partition, offset] = (form.entry ?? "").split(":").map(Number);
    const answer: DeadLetterAnswer = await actOnDeadLetters(
      c.get("services"),
      "redrive",
      {
        topic: form.topic,
        selection:
          form.all || partition === undefined || offset === undefined
            ? { all: true }
            : { entries: [{ partition, offset }] },
        ...(form.confirm ? { confirm: form.confirm } : {}),
        ...(form.reason ? { reason: form.reason } : {}),
      },
      session.operator.actor,
    );
    if (answer.status === "DONE") {
      const sent = answer.results.filter((r) => r.outcome === "REDRIVEN").length;
      return redirectWithNotice(
        c,
        "/console/dlq",
        `Re-drove ${sent} of ${answer.count} dead letters of ${answer.topic}${answer.remaining ? `; ${answer.remaining} more remain` : ""}.`,
      );
    }
    return c.html(
      <Layout title="Confirm re-drive" session={session} active="dlq">
        <h1>Re-drive {answer.count} dead letters?</h1>
        <p>
          Every open dead letter of <code>{answer.topic}</code>: {answer.count} now
          {answer.remaining > 0 && `, ${answer.remaining} more after these`}. They go back to their
          topic at a bounded rate.
        </p>
        <form method="post" action="/console/dlq/redrive" class="stack">
          <Csrf session={session} />
          <input type="hidden" name="topic" value={form.topic} />
          <input type="hidden" name="all" value="1" />
          <input type="hidden" name="confirm" value={answer.confirm} />
          <label>
            reason (optional, kept in the audit trail)
            <input name="reason" />
          </label>
          <button type="submit" class="primary">
            Re-drive {answer.count}
          </button>
        </form>
        <p>
          <a href="/console/dlq">Cancel</a>
        </p>
      </Layout>,
    );
  });
}
