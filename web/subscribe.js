// The subscribe page: opts this browser in to (or out of) Push365 for the signed-in Dynamics user,
// and keeps that subscription alive: at every open (and when the service worker asks) it gets the
// browser's FCM token and writes the user's p365_subscription row when the token changed or was
// last sent a week ago. The row's Dataverse webhook steps call Push365's subscribe and
// unsubscribe functions. It never logs anything it handles.
import { deleteFcmToken, getFcmToken, messagingSupported } from "./firebase-messaging.js";
import { footprint } from "./footprint.js";
import {
  environmentFirebaseConfig, globalContext, isNotFound, subscriptionRows, userOf,
} from "./dynamics.js";
import {
  clearState, loadState, otherUsers, plan, saveState, tokenMovedAway,
} from "./lifecycle.js";

const MESSAGES = {
  working: "Working…",
  subscribed: "Notifications are on for this browser.",
  "not-subscribed": "Notifications are off for this browser.",
  elsewhere: "Another Dynamics user turned notifications on in this browser since you did, so they " +
    "get this browser's notifications now. Turn them on again to get yours here instead.",
  blocked: "Notifications are blocked for this site. Allow them in the browser's site settings, then try again.",
  unsupported: "This browser cannot receive push notifications (it lacks service workers, the Push API " +
    "or storage for them, as private windows often do). Use a current Edge, Chrome or Firefox, or " +
    "Safari on macOS 13 or later, in a normal window.",
  "no-user": "Open this page from Dynamics 365: it needs to know who is signed in.",
  error: "Something went wrong; nothing was saved. Try again.",
};

const page = { context: null, user: null, rows: null, queue: Promise.resolve() };

function config() {
  return self.PUSH365_CONFIG;
}

export function showState(state) {
  document.body.dataset.state = state;
  document.getElementById("state").textContent = MESSAGES[state];
  document.getElementById("subscribe").hidden =
    !["not-subscribed", "error", "blocked", "elsewhere"].includes(state);
  document.getElementById("unsubscribe").hidden = state !== "subscribed";
}

// The service worker, at its explicit scope; resolves once it is active (the page itself may lie
// outside that scope, so navigator.serviceWorker.ready is not waited for).
async function serviceWorker() {
  const registration = await navigator.serviceWorker.register(config().serviceWorker, {
    scope: config().serviceWorkerScope,
  });
  const worker = registration.installing || registration.waiting;
  if (worker && !registration.active) {
    await new Promise((resolve) => {
      worker.addEventListener("statechange", () => { if (worker.state === "activated") resolve(); });
    });
  }
  return registration;
}

// Writes what `plan` says for this user and token; the new state is saved only once written.
async function write(state, token, force) {
  const user = page.user.id;
  const now = Date.now();
  const action = plan(state, token, now, force);
  if (action === "none") return action;
  const row = { [config().instanceIdColumn]: token, [config().footprintColumn]: await footprint() };
  let rowId = state && state.rowId;
  if (action === "replace") {
    await page.rows.remove(rowId); // the old token's row: unsubscribes it
    rowId = null;
  }
  if (action === "refresh") {
    try {
      await page.rows.update(rowId, row);
    } catch (error) {
      if (!isNotFound(error)) throw error;
      rowId = await page.rows.create(row); // the row was deleted meanwhile: a new one
    }
  } else {
    rowId = await page.rows.create(row);
  }
  saveState(localStorage, user, { rowId, token, sentAt: now });
  return action;
}

async function currentToken() {
  const registration = await serviceWorker();
  const token = await getFcmToken(config(), registration);
  if (!token) throw new Error("no token");
  return token;
}

// At every open and when the service worker asks: compare the token with the one last sent for
// this user, and write only when it changed or is a week old. Never creates a first row.
export function refresh() {
  page.queue = page.queue.then(refreshNow, refreshNow);
  return page.queue;
}

async function refreshNow() {
  const state = loadState(localStorage, page.user.id);
  if (!state || Notification.permission !== "granted" || tokenMovedAway(localStorage, page.user.id)) {
    return "none";
  }
  try {
    return await write(state, await currentToken(), false);
  } catch (error) {
    return "failed"; // kept as it was; the next open tries again
  }
}

export async function subscribe() {
  showState("working");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") return showState("blocked");
  let token;
  try {
    token = await currentToken();
  } catch (error) {
    return showState("error");
  }
  // Only now, with a token in hand, is a row written: a failure above leaves nothing behind.
  const force = tokenMovedAway(localStorage, page.user.id); // take this browser back
  try {
    await (page.queue = page.queue.then(
      () => write(loadState(localStorage, page.user.id), token, force)));
  } catch (error) {
    return showState("error");
  }
  return showState("subscribed");
}

export async function unsubscribe() {
  showState("working");
  const state = loadState(localStorage, page.user.id);
  try {
    if (state) await page.rows.remove(state.rowId);
  } catch (error) {
    return showState("error");
  }
  const moved = tokenMovedAway(localStorage, page.user.id);
  clearState(localStorage, page.user.id);
  if (!moved && otherUsers(localStorage, page.user.id).length === 0) {
    try {
      await deleteFcmToken(config());
    } catch (error) {
      // The row is gone, so Push365 no longer sends here; a stale token is harmless.
    }
  }
  return showState("not-subscribed");
}

export function initialState() {
  if (Notification.permission === "denied") return "blocked";
  if (!loadState(localStorage, page.user.id)) return "not-subscribed";
  return tokenMovedAway(localStorage, page.user.id) ? "elsewhere" : "subscribed";
}

function browserCanPush() {
  return "Notification" in window && "serviceWorker" in navigator && "PushManager" in window;
}

export async function start() {
  page.context = globalContext();
  if (!page.context) return showState("no-user");
  page.user = userOf(page.context);
  document.getElementById("user").textContent = page.user.name;
  let supported = false;
  try {
    supported = browserCanPush() && (await messagingSupported());
  } catch (error) {
    supported = false;
  }
  if (!supported) return showState("unsupported");
  const fromEnvironment = await environmentFirebaseConfig(config(), page.context);
  if (fromEnvironment) Object.assign(config(), fromEnvironment);
  page.rows = subscriptionRows(config(), page.context);
  document.getElementById("subscribe").addEventListener("click", subscribe);
  document.getElementById("unsubscribe").addEventListener("click", unsubscribe);
  // The service worker asks for a refresh when it starts and on pushsubscriptionchange.
  navigator.serviceWorker.addEventListener("message", (event) => {
    if (event.data && event.data.type === "push365:refresh") refresh();
  });
  navigator.serviceWorker.startMessages();
  showState(initialState());
  await refresh();
  document.body.dataset.refreshed = "true";
  return undefined;
}
