/**
 * The wrapper's token flow against a fake API: bearer header, one refresh per burst of
 * 401s, the retried call, and the end of the session when the refresh is refused.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { createRoombookClient } from "../src/index.js";

const BASE = "https://api.roombook.test";

interface FakeApi {
  calls: string[];
  refreshes: number;
  refreshWorks: boolean;
  fetch: (request: Request) => Promise<Response>;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": status < 400 ? "application/json" : "application/problem+json" },
  });
}

/** Accepts `access-1` until a refresh, then only `access-2`. */
function fakeApi(): FakeApi {
  const api: FakeApi = {
    calls: [],
    refreshes: 0,
    refreshWorks: true,
    async fetch(request: Request): Promise<Response> {
      const path = new URL(request.url).pathname;
      api.calls.push(`${request.method} ${path} ${request.headers.get("Authorization") ?? "-"}`);
      if (path === "/api/v1/auth/login") {
        const form = new URLSearchParams(await request.text());
        assert.equal(request.headers.get("Content-Type"), "application/x-www-form-urlencoded");
        assert.equal(form.get("username"), "ada@example.com");
        return json(200, { access_token: "access-1", token_type: "bearer", expires_in: 600 });
      }
      if (path === "/api/v1/auth/refresh") {
        api.refreshes += 1;
        return api.refreshWorks
          ? json(200, { access_token: "access-2", token_type: "bearer", expires_in: 600 })
          : json(401, { code: "invalid-refresh-token" });
      }
      const current = api.refreshes > 0 ? "Bearer access-2" : "Bearer access-1";
      if (request.headers.get("Authorization") !== current) {
        return json(401, { code: "not-authenticated" });
      }
      if (request.method === "PATCH") {
        return json(200, await request.json());
      }
      return json(200, []);
    },
  };
  return api;
}

test("login keeps the access token in memory and sends it as a bearer token", async () => {
  const api = fakeApi();
  const client = createRoombookClient({ baseUrl: BASE, fetch: api.fetch });
  assert.equal(await client.login("ada@example.com", "a long enough passphrase"), true);
  const { data, response } = await client.GET("/api/v1/auth/sessions");
  assert.equal(response.status, 200);
  assert.deepEqual(data, []);
  assert.equal(api.calls.at(-1), "GET /api/v1/auth/sessions Bearer access-1");
});

test("a 401 refreshes once for parallel calls and retries each with its body", async () => {
  const api = fakeApi();
  const client = createRoombookClient({ baseUrl: BASE, fetch: api.fetch });
  await client.login("ada@example.com", "a long enough passphrase");
  api.refreshes = 1; // the server has moved on: access-1 is refused from now on
  const [sessions, patched] = await Promise.all([
    client.GET("/api/v1/auth/sessions"),
    client.PATCH("/api/v1/users/me", {
      params: { header: { "If-Match": '"3"' } },
      body: { full_name: "Ada L." },
    }),
  ]);
  assert.equal(sessions.response.status, 200);
  assert.equal(patched.response.status, 200);
  assert.deepEqual(patched.data, { full_name: "Ada L." });
  assert.equal(api.refreshes, 2);
  assert.ok(api.calls.includes("PATCH /api/v1/users/me Bearer access-2"));
});

test("a refused refresh ends the session and answers the 401", async () => {
  const api = fakeApi();
  let ended = 0;
  const client = createRoombookClient({
    baseUrl: BASE,
    fetch: api.fetch,
    onSessionEnded: () => {
      ended += 1;
    },
  });
  api.refreshWorks = false;
  const { error, response } = await client.GET("/api/v1/auth/sessions");
  assert.equal(response.status, 401);
  assert.equal(error?.code, "not-authenticated");
  assert.equal(ended, 1);
  assert.equal(await client.refresh(), false);
  assert.equal(ended, 2);
});
