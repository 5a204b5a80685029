// Push365 browser configuration. In Dynamics, the Push365 solution's environment variable
// p365_FirebaseConfig (the Firebase web app config plus vapidKey, as JSON) replaces firebase and
// vapidKey below when it is set, so this file stays the same in every environment. Without the
// solution, edit them here: Firebase console > Project settings > Your apps (web app) gives
// firebase and vapidKey; `terraform output function_urls` gives the receipt URL.
self.PUSH365_CONFIG = {
  firebase: {
    apiKey: "REPLACE-ME",
    authDomain: "REPLACE-ME.firebaseapp.com",
    projectId: "REPLACE-ME",
    messagingSenderId: "REPLACE-ME",
    appId: "REPLACE-ME",
  },
  // Web Push certificate (Cloud Messaging > Web configuration > Key pair).
  vapidKey: "REPLACE-ME",
  // Where the service worker confirms delivery, used when a message does not name its own.
  receiptUrl: "https://REGION-PROJECT.cloudfunctions.net/push365-receipt",
  // The Dataverse table and columns a subscription is stored in.
  table: "p365_subscription",
  instanceIdColumn: "p365_instanceid",
  footprintColumn: "p365_footprint",
  // The service worker and its scope: the web resource folder at its unversioned path, so the
  // registration stays the same whatever cache-busting prefix Dynamics puts before /WebResources/
  // when it opens the page (a script may only control paths at or below its own folder).
  serviceWorker: "/WebResources/p365_/push365-sw.js",
  serviceWorkerScope: "/WebResources/p365_/",
  // The delivery report (report.html) calls `${p365_BaseUrl}/${functionPrefix}send/stats`: the
  // prefix is Terraform's name_prefix and a dash, as the setup command's --function-prefix.
  functionPrefix: "push365-",
  // Where Dynamics' client API lives when the page is not inside a Dynamics form or app.
  webApiVersion: "v9.2",
};
