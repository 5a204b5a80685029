// Dynamics 365 as the subscribe page sees it: the signed-in user, and the p365_subscription rows
// it writes (whose Dataverse webhook steps call Push365's subscribe and unsubscribe functions).

// Microsoft documents GetGlobalContext() (from ClientGlobalContext.js.aspx) for standalone HTML
// web resources; inside a form or app the page may only have Xrm, its own or its parent's.
function xrm(win) {
  if (win.Xrm && win.Xrm.Utility) return win.Xrm;
  try {
    if (win.parent && win.parent !== win && win.parent.Xrm && win.parent.Xrm.Utility) return win.parent.Xrm;
  } catch (error) {
    // A parent of another origin: no Xrm there.
  }
  return null;
}

export function globalContext(win = window) {
  if (typeof win.GetGlobalContext === "function") return win.GetGlobalContext();
  const api = xrm(win);
  return api ? api.Utility.getGlobalContext() : null;
}

// The user's id as Push365 keys it: a bare lower-case GUID ("{B111...}" in Dynamics).
export function normalizeId(id) {
  return String(id || "").replace(/[{}]/g, "").toLowerCase();
}

export function userOf(context) {
  const settings = context.userSettings || {};
  const id = settings.userId || (context.getUserId && context.getUserId());
  const name = settings.userName || (context.getUserName && context.getUserName()) || "";
  return { id: normalizeId(id), name };
}

// An environment variable's current value (its value, else its default) through the Dataverse
// Web API on the same origin with the user's session; null when it is not set or cannot be read
// (outside Dynamics).
export async function environmentVariable(config, context, name, fetchImpl = fetch) {
  try {
    const url = `${context.getClientUrl()}/api/data/${config.webApiVersion}/` +
      `RetrieveEnvironmentVariableValue(DefinitionSchemaName=@p1)?@p1='${name}'`;
    const response = await fetchImpl(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0" },
    });
    if (!response.ok) return null;
    const value = (await response.json()).Value;
    return typeof value === "string" && value ? value : null;
  } catch (error) {
    return null;
  }
}

// The Push365 solution's environment variable p365_FirebaseConfig (the Firebase web app config
// and vapidKey, as JSON): it is what makes config.js the same in every environment. null when the
// variable is not set, not JSON, or cannot be read (outside Dynamics): config.js's own values
// then stand.
export async function environmentFirebaseConfig(config, context, fetchImpl = fetch) {
  try {
    const raw = await environmentVariable(config, context, "p365_FirebaseConfig", fetchImpl);
    const value = JSON.parse(raw || "null");
    if (!value || typeof value !== "object" || !value.apiKey || !value.projectId) return null;
    const { vapidKey, ...firebase } = value;
    return vapidKey ? { firebase, vapidKey } : { firebase };
  } catch (error) {
    return null;
  }
}

// The rows: through Xrm.WebApi when the page has it, else the Dataverse Web API on the same
// origin (what a standalone web resource has, signed in by the user's Dynamics session).
export function subscriptionRows(config, context, win = window) {
  const api = xrm(win);
  if (api && api.WebApi) return xrmRows(api.WebApi, config.table);
  return webApiRows(`${context.getClientUrl()}/api/data/${config.webApiVersion}`, `${config.table}s`);
}

function xrmRows(webApi, table) {
  return {
    create: async (data) => (await webApi.createRecord(table, data)).id,
    update: async (id, data) => { await webApi.updateRecord(table, id, data); },
    remove: async (id) => {
      try {
        await webApi.deleteRecord(table, id);
      } catch (error) {
        if (!isNotFound(error)) throw error; // already gone: what was wanted
      }
    },
  };
}

// Dataverse's "does not exist" (HTTP 404; Xrm.WebApi's error code for a missing row).
export function isNotFound(error) {
  return Boolean(error) && (error.status === 404 || error.errorCode === -2147220969);
}

function webApiRows(base, entitySet) {
  async function send(method, path, body, extra = {}) {
    const response = await fetch(`${base}/${path}`, {
      method,
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json; charset=utf-8",
        "OData-MaxVersion": "4.0",
        "OData-Version": "4.0",
        ...extra,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok && !(method === "DELETE" && response.status === 404)) {
      throw Object.assign(new Error(`Dataverse answered ${response.status}`), { status: response.status });
    }
    return response;
  }
  return {
    create: async (data) => {
      const response = await send("POST", entitySet, data);
      const entity = response.headers.get("OData-EntityId") || "";
      const match = /\(([0-9a-fA-F-]{36})\)\s*$/.exec(entity);
      if (!match) throw new Error("Dataverse did not name the new row");
      return match[1];
    },
    // If-Match: * updates only an existing row (never creates one).
    update: async (id, data) => { await send("PATCH", `${entitySet}(${id})`, data, { "If-Match": "*" }); },
    remove: async (id) => { await send("DELETE", `${entitySet}(${id})`); },
  };
}
