// The Push365 service worker: shows a pushed notification, opens its link on click (focusing a
// Dynamics tab when there is one), and confirms delivery with the message's receipt.
// It never logs a notification's content.
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

self.addEventListener("push", (event) => {
  const payload = parse(event.data);
  const notification = payload.notification || {};
  const data = payload.data || {};
  const shown = self.registration.showNotification(notification.title || "", {
    body: notification.body || "",
    icon: notification.icon || undefined,
    tag: data.notification_id || undefined,
    data: { link: linkOf(payload) },
  });
  event.waitUntil(shown.then(() => confirmDelivery(data)));
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

async function openLink(link) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const target = clickTarget(link, windows);
  if (target.action === "focus") return target.client.focus();
  if (target.action === "navigate") {
    const focused = await target.client.focus();
    try {
      return await focused.navigate(target.url);
    } catch (error) {
      return self.clients.openWindow(target.url); // a tab this worker does not control
    }
  }
  if (target.action === "open") return self.clients.openWindow(target.url);
  return undefined;
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openLink(event.notification.data && event.notification.data.link));
});

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.push365 = { clickTarget, linkOf };
