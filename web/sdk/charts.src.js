// Source of web/charts.js: Chart.js for the delivery report (report.html), bundled, so nothing is
// loaded from a CDN. `make bundle` builds it with the Chart.js version pinned in package.json /
// package-lock.json.
import { Chart, registerables } from "chart.js";

Chart.register(...registerables);

export { Chart };
