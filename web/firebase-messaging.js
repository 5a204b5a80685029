// The only module that talks to Firebase: it gets this browser's FCM registration token.
// Tests replace this file at the same path (there is no network to FCM there).
const SDK = "https://www.gstatic.com/firebasejs/10.14.1";

export async function getFcmToken(config, serviceWorkerRegistration) {
  const { initializeApp } = await import(`${SDK}/firebase-app.js`);
  const { getMessaging, getToken } = await import(`${SDK}/firebase-messaging.js`);
  const app = initializeApp(config.firebase);
  return getToken(getMessaging(app), { vapidKey: config.vapidKey, serviceWorkerRegistration });
}

export async function deleteFcmToken(config) {
  const { initializeApp, getApps } = await import(`${SDK}/firebase-app.js`);
  const { getMessaging, deleteToken } = await import(`${SDK}/firebase-messaging.js`);
  const app = getApps()[0] || initializeApp(config.firebase);
  return deleteToken(getMessaging(app));
}
