// The subscribe page: opts this browser in to (or out of) Push365 for the signed-in Dynamics user.
// It stores a p365_subscription row through Xrm.WebApi; the row's Dataverse webhook steps call
// Push365's subscribe and unsubscribe functions. It never logs anything it handles.
import { deleteFcmToken, getFcmToken } from "./firebase-messaging.js";
import { footprint } from "./footprint.js";

const ROW_KEY = "push365.subscriptionRowId";
const MESSAGES = {
  working: "Working…",
  subscribed: "Notifications are on for this browser.",
  "not-subscribed": "Notifications are off for this browser.",
  blocked: "Notifications are blocked for this site. Allow them in the browser's site settings, then try again.",
  unsupported: "This browser cannot receive push notifications.",
  error: "Something went wrong; nothing was saved. Try again.",
};

function config() {
  return self.PUSH365_CONFIG;
}

function xrm() {
  return window.Xrm || (window.parent && window.parent.Xrm);
}

export function showState(state) {
  document.body.dataset.state = state;
  document.getElementById("state").textContent = MESSAGES[state];
  document.getElementById("subscribe").hidden = !["not-subscribed", "error", "blocked"].includes(state);
  document.getElementById("unsubscribe").hidden = state !== "subscribed";
}

function supported() {
  return "Notification" in window && "serviceWorker" in navigator && "PushManager" in window;
}

export async function subscribe() {
  showState("working");
  if (!supported()) return showState("unsupported");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") return showState("blocked");
  let token;
  try {
    const registration = await navigator.serviceWorker.register(config().serviceWorker);
    await navigator.serviceWorker.ready;
    token = await getFcmToken(config(), registration);
  } catch (error) {
    return showState("error");
  }
  if (!token) return showState("error");
  // Only now, with a token in hand, is a row created: a failure above leaves nothing behind.
  try {
    const row = await xrm().WebApi.createRecord(config().table, {
      [config().instanceIdColumn]: token,
      [config().footprintColumn]: await footprint(),
    });
    localStorage.setItem(ROW_KEY, row.id);
  } catch (error) {
    return showState("error");
  }
  return showState("subscribed");
}

export async function unsubscribe() {
  showState("working");
  const rowId = localStorage.getItem(ROW_KEY);
  try {
    if (rowId) await xrm().WebApi.deleteRecord(config().table, rowId);
  } catch (error) {
    return showState("error");
  }
  localStorage.removeItem(ROW_KEY);
  try {
    await deleteFcmToken(config());
  } catch (error) {
    // The row is gone, so Push365 no longer sends here; a stale token is harmless.
  }
  return showState("not-subscribed");
}

export function initialState() {
  if (!supported()) return "unsupported";
  if (Notification.permission === "denied") return "blocked";
  return localStorage.getItem(ROW_KEY) ? "subscribed" : "not-subscribed";
}

export function start() {
  const context = xrm() && xrm().Utility.getGlobalContext();
  const user = context ? context.userSettings.userName : "";
  document.getElementById("user").textContent = user;
  document.getElementById("subscribe").addEventListener("click", subscribe);
  document.getElementById("unsubscribe").addEventListener("click", unsubscribe);
  showState(initialState());
}
