// Source of web/firebase-messaging.js, the only module that talks to Firebase: it gets (and
// deletes) this browser's FCM registration token. `make bundle` builds it with the Firebase JS SDK
// pinned in package.json / package-lock.json, so nothing is loaded from a CDN at run time.
// Tests replace the built file at the same path (there is no network to FCM there).
import { getApps, initializeApp } from "firebase/app";
import { deleteToken, getMessaging, getToken, isSupported } from "firebase/messaging";

export { SDK_VERSION } from "firebase/app";

// What the token is, as Push365 records it: getToken() answers a registration token (the
// installation-id path, register()/onRegistered, is not used here).
export const TOKEN_KIND = "registration_token";

function app(config) {
  return getApps()[0] || initializeApp(config.firebase);
}

// False where Firebase messaging cannot work (no service workers, Push API, IndexedDB...).
export async function messagingSupported() {
  return isSupported();
}

export async function getFcmToken(config, serviceWorkerRegistration) {
  return getToken(getMessaging(app(config)), { vapidKey: config.vapidKey, serviceWorkerRegistration });
}

export async function deleteFcmToken(config) {
  return deleteToken(getMessaging(app(config)));
}
