// The Push365 service worker: shows a pushed notification once per notification id (its tag),
// opens its link on click (focusing a Dynamics tab when there is one), confirms delivery with the
// message's receipt, and asks open subscribe pages to refresh the subscription when it starts and
// when the browser changes its push subscription. It never logs a notification's content.
// Registered with scope /WebResources/p365_/ (config.js); it handles pushes whatever page is open.
importScripts("config.js");

function parse(data) {
  try {
    return data ? data.json() : {};
  } catch (error) {
    return {};
  }
}

// FCM delivers webpush.fcm_options.link as fcmOptions.link (older payloads: click_action).
function linkOf(payload) {
  const notification = payload.notification || {};
  return (payload.fcmOptions && payload.fcmOptions.link) || notification.click_action || null;
}

async function confirmDelivery(data) {
  const url = data.receipt_url || (self.PUSH365_CONFIG && self.PUSH365_CONFIG.receiptUrl);
  if (!data.receipt || !url) return;
  try {
    await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ receipt: data.receipt }),
    });
  } catch (error) {
    // Delivery was still shown; a missing receipt only leaves delivered_at empty.
  }
}

// A notification id is shown once: a repeat (FCM may deliver twice) replaces it silently under the
// same tag, and only the first posts the receipt.
async function show(payload) {
  const notification = payload.notification || {};
  const data = payload.data || {};
  const tag = data.notification_id || undefined;
  const already = tag ? await self.registration.getNotifications({ tag }) : [];
  await self.registration.showNotification(notification.title || "", {
    body: notification.body || "",
    icon: notification.icon || undefined,
    tag,
    data: { link: linkOf(payload) },
  });
  if (already.length === 0) await confirmDelivery(data);
}

self.addEventListener("push", (event) => {
  event.waitUntil(show(parse(event.data)));
});

// The Firebase JS SDK gets tokens only in a window (getToken throws in a service worker), so the
// worker asks the open subscribe pages to compare and refresh; closed ones do it at next open.
async function askPagesToRefresh(reason) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const client of windows) client.postMessage({ type: "push365:refresh", reason });
}

// The browser replaced (or dropped) the push subscription behind the FCM token: subscribe again
// with the same options when it gave no new one, then let the pages get the new token.
async function resubscribe(event) {
  if (!event.newSubscription && event.oldSubscription && event.oldSubscription.options) {
    try {
      await self.registration.pushManager.subscribe(event.oldSubscription.options);
    } catch (error) {
      // Permission gone: the next page open shows it.
    }
  }
  await askPagesToRefresh("pushsubscriptionchange");
}

self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(resubscribe(event));
});

// What a click does, decided from the open windows: focus a tab already showing the link,
// else navigate a Dynamics tab of the link's origin, else open a new one.
function clickTarget(link, windows) {
  if (!link) return { action: "none" };
  const target = new URL(link);
  const exact = windows.find((w) => w.url === target.href);
  if (exact) return { action: "focus", client: exact, url: target.href };
  const sameOrigin = windows.find((w) => new URL(w.url).origin === target.origin);
  if (sameOrigin) return { action: "navigate", client: sameOrigin, url: target.href };
  return { action: "open", url: target.href };
}

// Focusing and opening windows is allowed only while a notification click is handled.
async function openLink(link) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const target = clickTarget(link, windows);
  if (target.action === "none") return null;
  if (target.action === "focus") return target.client.focus();
  if (target.action === "navigate") {
    let client = target.client;
    try {
      client = await client.focus();
    } catch (error) {
      // Not focusable now: navigate it all the same.
    }
    try {
      const navigated = await client.navigate(target.url);
      if (navigated) return navigated;
    } catch (error) {
      // A tab this worker does not control (Dynamics' own pages): a new one instead.
    }
  }
  return self.clients.openWindow(target.url);
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openLink(event.notification.data && event.notification.data.link));
});

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// Every start of the worker (install, a push, a click, a restart): open pages refresh.
askPagesToRefresh("start");

self.push365 = { clickTarget, linkOf, openLink };
