import { actOnDeadLetters } from "../../reconcile/dead_letter_actions";
import { operatorOf } from "../admin_auth";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { jsonBody } from "../validation";
import {
  ACTION_ERRORS,
  ActionAnswer,
  actionBody,
  selectionOf,
  TopicParams,
} from "./admin_v1_dlq_redrive";

/**
 * POST /admin/v1/dlq/{topic}/discard (dlq:write) with a required `reason`: marks dead letters
 * discarded (a DLQ_DISCARDED audit row each; nothing is sent, their log rows stay FAILED).
 * `all` or more than 10 entries answer a count and a `confirm` token first.
 */
export function registerAdminV1DlqDiscard(app: App) {
  const Body = actionBody("discard");
  const route = describeRoute(app, {
    method: "post",
    path: "/admin/v1/dlq/:topic/discard",
    summary:
      "Discard dead letters with a reason (one, a selection or all; bulk is count-then-confirm)",
    tags: ["dlq"],
    scope: "dlq:write",
    params: TopicParams,
    body: Body,
    responses: {
      200: { description: "the count to confirm, or what was discarded", schema: ActionAnswer },
    },
    errors: ACTION_ERRORS,
  });
  app.post(route.path, route.auth, jsonBody(Body), async (c) => {
    const body = c.req.valid("json");
    const answer = await actOnDeadLetters(
      c.get("services"),
      "discard",
      {
        topic: c.req.param("topic") ?? "",
        selection: selectionOf(body),
        ...(body.confirm ? { confirm: body.confirm } : {}),
        reason: body.reason ?? "",
      },
      operatorOf(c).actor,
    );
    return c.json(answer);
  });
}
