// test/sdk/v2.mjs: Unkey's official TypeScript SDK (@unkey/api, pinned in
// package-lock.json) against unkey's v2 API, through a real HTTP front that
// does what the reverse proxy and PostgREST do (test/t/HttpFront.pm).  The
// SDK validates every response, errors included, against Unkey's schemas, so
// a wrong type, a null where none is allowed or a missing field fails here.
// Prints one line per check, "ok - ..." or "not ok - ...", for TAP 021.
//
// Environment: UNKEY_BASE_URL, ROOT_ALL (every permission the checks need),
// ROOT_SCOPED (read_api and verify_key on APP_API only), APP_API, OTHER_API,
// APP_KEY (2 credits, on APP_API), APP_KEYS_BEFORE (how many APP_API has),
// OTHER_KEY and OTHER_KEY_ID (on OTHER_API), PROTECTED_API (delete-protected).
import { Unkey } from "@unkey/api";
import * as errors from "@unkey/api/models/errors";

const env = process.env;
const client = (rootKey) =>
  new Unkey({ rootKey, serverURL: env.UNKEY_BASE_URL, retryConfig: { strategy: "none" } });
const all = client(env.ROOT_ALL);
const scoped = client(env.ROOT_SCOPED);
let failures = 0;

function check(ok, what, detail) {
  if (!ok) failures++;
  console.log(`${ok ? "ok" : "not ok"} - ${what}${ok || detail === undefined ? "" : ": " + detail}`);
}

// the call must succeed; returns its response (or undefined after a failure)
async function succeeds(what, call) {
  try {
    const res = await call();
    // a paginated method answers {result: {meta, data, pagination}, next()}
    const meta = res?.meta ?? res?.result?.meta;
    check(typeof meta?.requestId === "string", `${what}: 200 with meta.requestId`, JSON.stringify(res));
    return res;
  } catch (e) {
    check(false, `${what}: 200`, `${e.constructor.name} ${e.message}`);
  }
}

// the call must fail with the SDK's typed error for that status
async function fails(what, Class, status, call) {
  try {
    const res = await call();
    check(false, `${what}: ${status}`, `succeeded: ${JSON.stringify(res)}`);
  } catch (e) {
    check(e instanceof Class && e.statusCode === status && typeof e.error?.type === "string" &&
          e.error.status === status && typeof e.meta?.requestId === "string",
          `${what}: ${status} ${Class.name}`, `${e.constructor.name} ${e.statusCode} ${e.message}`);
  }
}

// apis: create, read, delete, and their errors
const created = await succeeds("apis.createApi", () => all.apis.createApi({ name: "sdk-made" }));
const apiId = created?.data?.apiId;
check(/^api_/.test(apiId ?? ""), "apis.createApi answers an apiId", JSON.stringify(created));
const got = await succeeds("apis.getApi", () => all.apis.getApi({ apiId }));
check(got?.data?.id === apiId && got?.data?.name === "sdk-made", "apis.getApi answers id and name", JSON.stringify(got));
await fails("apis.createApi with a 2-character name", errors.BadRequestErrorResponse, 400,
  () => all.apis.createApi({ name: "ab" }));
await fails("apis.getApi of a missing API", errors.NotFoundErrorResponse, 404,
  () => all.apis.getApi({ apiId: "api_missing00" }));
await fails("apis.getApi with an unknown root key", errors.UnauthorizedErrorResponse, 401,
  () => client("unkey_not_a_root_key").apis.getApi({ apiId }));
await fails("apis.getApi of another API with a scoped root key", errors.ForbiddenErrorResponse, 403,
  () => scoped.apis.getApi({ apiId: env.OTHER_API }));
await succeeds("apis.getApi of its own API with a scoped root key", () => scoped.apis.getApi({ apiId: env.APP_API }));
await fails("apis.createApi with a scoped root key", errors.ForbiddenErrorResponse, 403,
  () => scoped.apis.createApi({ name: "not allowed" }));
await succeeds("apis.deleteApi", () => all.apis.deleteApi({ apiId }));
await fails("apis.getApi after apis.deleteApi", errors.NotFoundErrorResponse, 404, () => all.apis.getApi({ apiId }));
await fails("apis.deleteApi of a delete-protected API", errors.PreconditionFailedErrorResponse, 412,
  () => all.apis.deleteApi({ apiId: env.PROTECTED_API }));

// keys.verifyKey: credits to USAGE_EXCEEDED, scope, outcomes as 200
const codes = [];
for (let i = 0; i < 3; i++) {
  const v = await succeeds(`keys.verifyKey #${i + 1}`, () => scoped.keys.verifyKey({ key: env.APP_KEY }));
  codes.push(`${v?.data?.code}:${v?.data?.credits}`);
}
check(codes.join(" ") === "VALID:1 VALID:0 USAGE_EXCEEDED:0", "keys.verifyKey spends 2 credits, then USAGE_EXCEEDED", codes.join(" "));
const full = await succeeds("keys.verifyKey with cost 0", () =>
  scoped.keys.verifyKey({ key: env.APP_KEY, credits: { cost: 0 }, tags: ["path=/sdk"] }));
check(full?.data?.valid === true && full?.data?.keyId?.startsWith("key_") && full?.data?.identity?.externalId === "acme" &&
      full?.data?.meta?.plan === null && Array.isArray(full?.data?.ratelimits) && full.data.ratelimits[0].name === "requests",
      "keys.verifyKey answers keyId, identity, meta (its nulls kept) and the limits checked", JSON.stringify(full?.data));
const other = await succeeds("keys.verifyKey of a key outside the root key's scope", () =>
  scoped.keys.verifyKey({ key: env.OTHER_KEY }));
check(other?.data?.code === "NOT_FOUND" && other?.data?.valid === false && Object.keys(other.data).length === 2,
      "a key outside the scope is NOT_FOUND, with valid and code only", JSON.stringify(other?.data));
const nope = await succeeds("keys.verifyKey of an unknown key", () => scoped.keys.verifyKey({ key: "sk_unknown" }));
check(nope?.data?.code === "NOT_FOUND", "an unknown key is NOT_FOUND", JSON.stringify(nope?.data));
await fails("keys.verifyKey with a broken permission query", errors.BadRequestErrorResponse, 400,
  () => scoped.keys.verifyKey({ key: env.APP_KEY, permissions: "a AND (" }));
await fails("keys.verifyKey with a cost below 0", errors.BadRequestErrorResponse, 400,
  () => scoped.keys.verifyKey({ key: env.APP_KEY, credits: { cost: -1 } }));

// keys: create (every field), read it back, whoami, list to the last page, delete
const made = await succeeds("keys.createKey", () => all.keys.createKey({
  apiId: env.APP_API, prefix: "sk", name: "sdk key", externalId: "sdk-user", meta: { plan: "pro", note: null },
  expires: 4102444800000, credits: { remaining: 3, refill: { interval: "monthly", amount: 3, refillDay: 1 } },
  ratelimits: [{ name: "requests", limit: 10, duration: 60000, autoApply: true }],
}));
const keyId = made?.data?.keyId;
check(/^key_/.test(keyId ?? "") && /^sk_/.test(made?.data?.key ?? ""), "keys.createKey answers keyId and the key", JSON.stringify(made?.data));
const info = await succeeds("keys.getKey", () => all.keys.getKey({ keyId }));
const d = info?.data ?? {};
check(d.keyId === keyId && d.name === "sdk key" && d.start?.startsWith("sk_") && d.enabled === true &&
      d.credits?.remaining === 3 && d.credits?.refill?.interval === "monthly" && d.credits?.refill?.refillDay === 1 &&
      d.expires === 4102444800000 && typeof d.createdAt === "number" && d.identity?.externalId === "sdk-user" &&
      d.meta?.note === null && d.ratelimits?.[0]?.name === "requests" && d.plaintext === undefined,
      "keys.getKey answers Unkey's KeyResponseData", JSON.stringify(d));
const who = await succeeds("keys.whoami", () => all.keys.whoami({ key: made?.data?.key }));
check(who?.data?.keyId === keyId, "keys.whoami finds the key by its plaintext", JSON.stringify(who?.data));
await fails("keys.whoami of an unknown key", errors.NotFoundErrorResponse, 404, () => all.keys.whoami({ key: "sk_none" }));
await fails("keys.getKey of another API's key with a scoped root key", errors.ForbiddenErrorResponse, 403,
  () => scoped.keys.getKey({ keyId: env.OTHER_KEY_ID }));
await fails("keys.createKey into a missing API", errors.NotFoundErrorResponse, 404,
  () => all.keys.createKey({ apiId: "api_missing00" }));
await fails("keys.createKey with a monthly refill and no refillDay", errors.BadRequestErrorResponse, 400,
  () => all.keys.createKey({ apiId: env.APP_API, credits: { remaining: 1, refill: { interval: "monthly", amount: 1 } } }));
for (let i = 0; i < 4; i++) await all.keys.createKey({ apiId: env.APP_API, name: `page ${i}` });
const seen = new Set();
let pages = 0;
let page = await succeeds("apis.listKeys", () => all.apis.listKeys({ apiId: env.APP_API, limit: 2 }));
while (page) {
  pages++;
  for (const k of page.result.data) seen.add(k.keyId);
  page = await page.next();
}
const total = Number(env.APP_KEYS_BEFORE) + 5;
check(seen.size === total && pages === Math.ceil(total / 2), `apis.listKeys pages to the last page with next() (${pages} pages)`,
      `${seen.size} keys in ${pages} pages, expected ${total}`);
await fails("apis.listKeys with a scoped root key lacking read_key", errors.NotFoundErrorResponse, 404,
  () => scoped.apis.listKeys({ apiId: env.APP_API }));
await succeeds("keys.deleteKey", () => all.keys.deleteKey({ keyId }));
await fails("keys.getKey after keys.deleteKey", errors.NotFoundErrorResponse, 404, () => all.keys.getKey({ keyId }));
const dead = await succeeds("keys.verifyKey of a deleted key", () => all.keys.verifyKey({ key: made?.data?.key }));
check(dead?.data?.code === "NOT_FOUND", "a deleted key verifies as NOT_FOUND", JSON.stringify(dead?.data));

console.log(`# ${failures} failed`);
