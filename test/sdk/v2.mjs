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

// identities: create, get, list with search to the last page, update, delete
const ident = await succeeds("identities.createIdentity", () => all.identities.createIdentity({
  externalId: "sdk-acme", meta: { plan: "pro" }, ratelimits: [{ name: "requests", limit: 5, duration: 60000, autoApply: true }],
}));
check(/^id_/.test(ident?.data?.identityId ?? ""), "identities.createIdentity answers an identityId", JSON.stringify(ident?.data));
await fails("identities.createIdentity of a taken externalId", errors.ConflictErrorResponse, 409,
  () => all.identities.createIdentity({ externalId: "sdk-acme" }));
const gotIdent = await succeeds("identities.getIdentity", () => all.identities.getIdentity({ identity: "sdk-acme" }));
check(gotIdent?.data?.id === ident?.data?.identityId && gotIdent?.data?.meta?.plan === "pro" &&
      gotIdent?.data?.ratelimits?.[0]?.name === "requests", "identities.getIdentity answers Unkey's Identity", JSON.stringify(gotIdent?.data));
for (let i = 0; i < 3; i++) await all.identities.createIdentity({ externalId: `sdk-list-${i}` });
let idPages = 0;
const idSeen = [];
let idPage = await succeeds("identities.listIdentities", () => all.identities.listIdentities({ search: "SDK-LIST", limit: 2 }));
while (idPage) {
  idPages++;
  idSeen.push(...idPage.result.data.map((x) => x.externalId));
  idPage = await idPage.next();
}
check(idSeen.sort().join(",") === "sdk-list-0,sdk-list-1,sdk-list-2" && idPages === 2,
      "identities.listIdentities searches case-insensitively and pages with next()", `${idSeen} in ${idPages} pages`);
const upd = await succeeds("identities.updateIdentity", () =>
  all.identities.updateIdentity({ identity: "sdk-acme", meta: { plan: "max" }, ratelimits: [] }));
check(upd?.data?.meta?.plan === "max" && upd?.data?.ratelimits === undefined, "identities.updateIdentity replaces meta and limits",
      JSON.stringify(upd?.data));
await succeeds("identities.deleteIdentity", () => all.identities.deleteIdentity({ identity: "sdk-acme" }));
await fails("identities.deleteIdentity twice (application/problem+json)", errors.NotFoundErrorResponse, 404,
  () => all.identities.deleteIdentity({ identity: "sdk-acme" }));
await fails("identities.createIdentity without identity.*.create_identity", errors.ForbiddenErrorResponse, 403,
  () => scoped.identities.createIdentity({ externalId: "sdk-nope" }));

// rate limits: limit, multiLimit, overrides
const l1 = await succeeds("ratelimit.limit", () =>
  all.ratelimit.limit({ namespace: "sdk.api", identifier: "u1", limit: 1, duration: 60000 }));
const l2 = await succeeds("ratelimit.limit again", () =>
  all.ratelimit.limit({ namespace: "sdk.api", identifier: "u1", limit: 1, duration: 60000 }));
check(l1?.data?.success === true && l1?.data?.remaining === 0 && l2?.data?.success === false && typeof l2?.data?.reset === "number",
      "ratelimit.limit allows 1 and refuses the next", JSON.stringify([l1?.data, l2?.data]));
const multi = await succeeds("ratelimit.multiLimit", () => all.ratelimit.multiLimit([
  { namespace: "sdk.api", identifier: "u2", limit: 5, duration: 60000 },
  { namespace: "sdk.api", identifier: "u1", limit: 1, duration: 60000 }]));
check(multi?.data?.passed === false && multi?.data?.limits?.length === 2, "ratelimit.multiLimit is all or nothing",
      JSON.stringify(multi?.data));
const ov = await succeeds("ratelimit.setOverride", () =>
  all.ratelimit.setOverride({ namespace: "sdk.api", identifier: "vip*", limit: 50, duration: 60000 }));
const gotOv = await succeeds("ratelimit.getOverride", () => all.ratelimit.getOverride({ namespace: "sdk.api", identifier: "vip*" }));
check(gotOv?.data?.overrideId === ov?.data?.overrideId && gotOv?.data?.limit === 50, "ratelimit.getOverride answers the override",
      JSON.stringify(gotOv?.data));
const vip = await succeeds("ratelimit.limit under an override", () =>
  all.ratelimit.limit({ namespace: "sdk.api", identifier: "vip-1", limit: 1, duration: 60000 }));
check(vip?.data?.limit === 50 && vip?.data?.overrideId === ov?.data?.overrideId, "the wildcard override applies", JSON.stringify(vip?.data));
const ovs = await succeeds("ratelimit.listOverrides", () => all.ratelimit.listOverrides({ namespace: "sdk.api" }));
check(ovs?.result?.data?.length === 1, "ratelimit.listOverrides lists it", JSON.stringify(ovs?.result));
await succeeds("ratelimit.deleteOverride", () => all.ratelimit.deleteOverride({ namespace: "sdk.api", identifier: "vip*" }));
await fails("ratelimit.getOverride after delete", errors.NotFoundErrorResponse, 404,
  () => all.ratelimit.getOverride({ namespace: "sdk.api", identifier: "vip*" }));
await fails("ratelimit.limit without ratelimit.*.limit", errors.ForbiddenErrorResponse, 403,
  () => scoped.ratelimit.limit({ namespace: "sdk.api", identifier: "u1", limit: 1, duration: 60000 }));

// permissions and roles
const perm = await succeeds("permissions.createPermission", () =>
  all.permissions.createPermission({ name: "Read SDK docs", slug: "sdkdoc.read", description: "read them" }));
await fails("permissions.createPermission of a taken slug", errors.ConflictErrorResponse, 409,
  () => all.permissions.createPermission({ name: "again", slug: "sdkdoc.read" }));
const gp = await succeeds("permissions.getPermission", () => all.permissions.getPermission({ permission: "sdkdoc.read" }));
check(gp?.data?.id === perm?.data?.permissionId && gp?.data?.description === "read them", "permissions.getPermission answers it",
      JSON.stringify(gp?.data));
const role = await succeeds("permissions.createRole", () =>
  all.permissions.createRole({ name: "sdk editor", permissions: ["sdkdoc.read", "sdkdoc.write"] }));
const gr = await succeeds("permissions.getRole", () => all.permissions.getRole({ role: "sdk editor" }));
check(gr?.data?.id === role?.data?.roleId && gr?.data?.permissions?.map((p) => p.slug).join() === "sdkdoc.read,sdkdoc.write" &&
      gr?.data?.description === undefined, "permissions.getRole answers the role with its permissions", JSON.stringify(gr?.data));
const lp = await succeeds("permissions.listPermissions", () => all.permissions.listPermissions({ search: "SDKDOC" }));
check(lp?.result?.data?.length === 2, "permissions.listPermissions searches", JSON.stringify(lp?.result?.data));
const lr = await succeeds("permissions.listRoles", () => all.permissions.listRoles({ search: "sdk" }));
check(lr?.result?.data?.[0]?.name === "sdk editor", "permissions.listRoles searches", JSON.stringify(lr?.result?.data));
const srp = await succeeds("permissions.setRolePermissions", () =>
  all.permissions.setRolePermissions({ roleId: role?.data?.roleId, permissions: ["sdkdoc.list"] }));
check(srp?.data?.map((p) => p.slug).join() === "sdkdoc.list", "permissions.setRolePermissions replaces them", JSON.stringify(srp?.data));
await succeeds("permissions.deleteRole", () => all.permissions.deleteRole({ role: "sdk editor" }));
await succeeds("permissions.deletePermission", () => all.permissions.deletePermission({ permission: "sdkdoc.read" }));
await fails("permissions.getPermission after delete", errors.NotFoundErrorResponse, 404,
  () => all.permissions.getPermission({ permission: "sdkdoc.read" }));
await fails("permissions.createPermission without rbac.*.create_permission", errors.ForbiddenErrorResponse, 403,
  () => scoped.permissions.createPermission({ name: "x", slug: "sdk.x" }));

// changing keys: a full flow on one key
const flow = await succeeds("keys.createKey for the flow", () => all.keys.createKey({
  apiId: env.APP_API, name: "flow", credits: { remaining: 2, refill: { interval: "daily", amount: 2 } } }));
const fid = flow?.data?.keyId;
console.log(`# flow key ${fid}`);
// spend its credits to USAGE_EXCEEDED, then rate-limit it by its key id
const spent = [];
for (let i = 0; i < 3; i++) {
  const v = await succeeds(`keys.verifyKey of the flow key #${i + 1}`, () => all.keys.verifyKey({ key: flow?.data?.key, tags: ["flow"] }));
  spent.push(`${v?.data?.code}:${v?.data?.credits}`);
}
check(spent.join(" ") === "VALID:1 VALID:0 USAGE_EXCEEDED:0", "the flow key spends its 2 credits, then USAGE_EXCEEDED", spent.join(" "));
const fl = [];
for (let i = 0; i < 3; i++) {
  const r = await succeeds(`ratelimit.limit of the flow key #${i + 1}`, () =>
    all.ratelimit.limit({ namespace: "sdk.flow", identifier: fid, limit: 2, duration: 60000 }));
  fl.push(`${r?.data?.success}:${r?.data?.remaining}`);
}
check(fl.join(" ") === "true:1 true:0 false:0", "the flow key is rate-limited after 2 requests", fl.join(" "));
// its analytics, by Unkey's SQL (the events reach the table within the writer's flush interval)
let counts = "";
for (let i = 0; i < 50 && counts !== "USAGE_EXCEEDED:1 VALID:2"; i++) {
  if (i > 0) await new Promise((r) => setTimeout(r, 100));
  const a = await all.analytics.getVerifications({ query:
    `SELECT outcome, count(*) AS n FROM key_verifications_v1 WHERE key_id = '${fid}' GROUP BY outcome ORDER BY outcome` });
  counts = (a?.data ?? []).map((r) => `${r.outcome}:${r.n}`).join(" ");
}
check(counts === "USAGE_EXCEEDED:1 VALID:2", "analytics.getVerifications counts the flow key's verifications", counts);
const hourly = await succeeds("analytics.getVerifications per hour", () => all.analytics.getVerifications({ query:
  `SELECT sum(count) AS n FROM key_verifications_per_hour_v1 WHERE key_id = '${fid}'` }));
check(Number(hourly?.data?.[0]?.n) >= 0, "analytics.getVerifications answers rows as objects", JSON.stringify(hourly?.data));
await fails("analytics.getVerifications of another table", errors.BadRequestErrorResponse, 400,
  () => all.analytics.getVerifications({ query: "SELECT * FROM keys" }));
await fails("analytics.getVerifications without read_analytics", errors.ForbiddenErrorResponse, 403,
  () => scoped.analytics.getVerifications({ query: "SELECT 1" }));
let checks = "";
for (let i = 0; i < 50 && checks !== "false:1 true:2"; i++) {
  if (i > 0) await new Promise((r) => setTimeout(r, 100));
  const a = await all.analytics.getRatelimits({ query:
    `SELECT passed, count(*) AS n FROM ratelimits_v1 WHERE identifier = '${fid}' GROUP BY passed ORDER BY passed` });
  checks = (a?.data ?? []).map((r) => `${r.passed}:${r.n}`).join(" ");
}
check(checks === "false:1 true:2", "analytics.getRatelimits counts the flow key's rate-limit checks", checks);
await succeeds("keys.updateKey", () => all.keys.updateKey({ keyId: fid, name: "flow renamed", meta: { step: 2 }, externalId: "sdk-flow" }));
await succeeds("keys.updateKey clearing with null", () => all.keys.updateKey({ keyId: fid, meta: null, expires: null }));
const fk = await succeeds("keys.getKey after updateKey", () => all.keys.getKey({ keyId: fid }));
check(fk?.data?.name === "flow renamed" && fk?.data?.meta === undefined && fk?.data?.identity?.externalId === "sdk-flow",
      "keys.updateKey sets, keeps and clears as Unkey does", JSON.stringify(fk?.data));
const uc = await succeeds("keys.updateCredits", () => all.keys.updateCredits({ keyId: fid, operation: "increment", value: 3 }));
check(uc?.data?.remaining === 3 && uc?.data?.refill?.interval === "daily", "keys.updateCredits answers KeyCreditsData", JSON.stringify(uc?.data));
const unl = await succeeds("keys.updateCredits to unlimited", () => all.keys.updateCredits({ keyId: fid, operation: "set", value: null }));
check(unl?.data?.remaining === null, "credits.remaining is null when unlimited (the one nullable field)", JSON.stringify(unl?.data));
await fails("keys.updateCredits increment of unlimited credits", errors.BadRequestErrorResponse, 400,
  () => all.keys.updateCredits({ keyId: fid, operation: "increment", value: 1 }));
const ap = await succeeds("keys.addPermissions", () => all.keys.addPermissions({ keyId: fid, permissions: ["flow.read", "flow.write"] }));
check(ap?.data?.map((p) => p.slug).join() === "flow.read,flow.write", "keys.addPermissions answers the key's permissions", JSON.stringify(ap?.data));
const rp = await succeeds("keys.removePermissions", () => all.keys.removePermissions({ keyId: fid, permissions: ["flow.write"] }));
check(rp?.data?.length === 1, "keys.removePermissions removes one", JSON.stringify(rp?.data));
await succeeds("keys.setPermissions", () => all.keys.setPermissions({ keyId: fid, permissions: [] }));
await all.permissions.createRole({ name: "flow role", permissions: ["flow.read"] });
const ar = await succeeds("keys.addRoles", () => all.keys.addRoles({ keyId: fid, roles: ["flow role"] }));
check(ar?.data?.[0]?.name === "flow role" && ar?.data?.[0]?.permissions?.[0]?.slug === "flow.read", "keys.addRoles answers roles with permissions",
      JSON.stringify(ar?.data));
await succeeds("keys.removeRoles", () => all.keys.removeRoles({ keyId: fid, roles: ["flow role"] }));
await succeeds("keys.setRoles", () => all.keys.setRoles({ keyId: fid, roles: ["flow role"] }));
await fails("keys.addRoles of an unknown role", errors.NotFoundErrorResponse, 404,
  () => all.keys.addRoles({ keyId: fid, roles: ["no such role"] }));
const rr = await succeeds("keys.rerollKey", () => all.keys.rerollKey({ keyId: fid, expiration: 0 }));
const oldV = await succeeds("keys.verifyKey of the rerolled-away key", () => all.keys.verifyKey({ key: flow?.data?.key }));
const newV = await succeeds("keys.verifyKey of the new key", () => all.keys.verifyKey({ key: rr?.data?.key }));
check(oldV?.data?.code === "EXPIRED" && newV?.data?.valid === true && newV?.data?.roles?.[0] === "flow role",
      "keys.rerollKey: the old key expires, the new one keeps the roles", JSON.stringify([oldV?.data?.code, newV?.data]));
await succeeds("keys.deleteKey of the rerolled key", () => all.keys.deleteKey({ keyId: rr?.data?.keyId }));
const gone = await succeeds("keys.verifyKey of the deleted key", () => all.keys.verifyKey({ key: rr?.data?.key }));
check(gone?.data?.valid === false && gone?.data?.code === "NOT_FOUND", "a deleted key verifies as NOT_FOUND", JSON.stringify(gone?.data));
const mig = await succeeds("keys.migrateKeys", () => all.keys.migrateKeys({ migrationId: "sdk-migration", apiId: env.APP_API,
  keys: [{ hash: env.LEGACY_HASH, name: "legacy", credits: { remaining: 1 } }, { hash: env.LEGACY_HASH }] }));
check(mig?.data?.migrated?.length === 1 && Array.isArray(mig?.data?.failed), "keys.migrateKeys answers migrated and failed arrays",
      JSON.stringify(mig?.data));
const legacy = await succeeds("keys.verifyKey of a migrated key", () => all.keys.verifyKey({ key: env.LEGACY_KEY }));
check(legacy?.data?.valid === true && legacy?.data?.name === "legacy" && legacy?.data?.credits === 0,
      "a migrated key verifies with its original plaintext", JSON.stringify(legacy?.data));

console.log(`# ${failures} failed`);
