// A browser's subscription over months: what the page remembers per Dynamics user, and what it
// must write when it sees the browser's current FCM token. Pure decisions over local storage.

// Firebase's guidance: fetch the token at every start, and tell the server at least weekly, so a
// token that still works is never taken for stale (Push365 drops subscriptions unseen for 60 days).
export const REFRESH_AFTER_MS = 7 * 24 * 60 * 60 * 1000;
const PREFIX = "push365.subscription.";
const BROWSER_USER = "push365.browserUser"; // who this browser's token was last sent for

// What is kept for one Dynamics user in this browser profile: the row, the token it holds and
// when it was last sent. Keyed by the user's id, so users sharing a profile never share state.
export function loadState(storage, userId) {
  try {
    const state = JSON.parse(storage.getItem(PREFIX + userId) || "null");
    return state && state.rowId && state.token ? state : null;
  } catch (error) {
    return null;
  }
}

export function saveState(storage, userId, state) {
  storage.setItem(PREFIX + userId, JSON.stringify(state));
  storage.setItem(BROWSER_USER, userId);
}

export function clearState(storage, userId) {
  storage.removeItem(PREFIX + userId);
  if (storage.getItem(BROWSER_USER) === userId) storage.removeItem(BROWSER_USER);
}

// Another user of this profile turned notifications on after this one: FCM has one token per
// browser profile, and Push365 delivers a token to the user who sent it last.
export function tokenMovedAway(storage, userId) {
  const owner = storage.getItem(BROWSER_USER);
  return Boolean(owner) && owner !== userId;
}

export function otherUsers(storage, userId) {
  const found = [];
  for (let i = 0; i < storage.length; i += 1) {
    const key = storage.key(i);
    if (key && key.startsWith(PREFIX) && key !== PREFIX + userId) found.push(key.slice(PREFIX.length));
  }
  return found;
}

// What to write for a user with `state`, now that the browser's token is `token`:
//   "create"  no row yet: create one;
//   "replace" the token changed: delete the old row (its token is unsubscribed), create a new one;
//   "refresh" same token, last sent a week ago or more (or `force`): rewrite the row, which
//             subscribes it again and refreshes its last-seen time;
//   "none"    nothing to write.
export function plan(state, token, now, force = false) {
  if (!state) return "create";
  if (state.token !== token) return "replace";
  if (force || !(now - state.sentAt < REFRESH_AFTER_MS)) return "refresh";
  return "none";
}
