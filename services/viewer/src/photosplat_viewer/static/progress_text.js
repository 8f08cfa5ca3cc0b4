// The job page's progress line: how far the job is, and the stage's ETA counting down between the
// worker's reports (SfM's matching reports nothing for up to a minute) from when the worker made it.
import { formatDuration, serverNow, TERMINAL } from "./api.js";

const COUNTDOWN_MS = 1000;

/** Seconds left in the stage now: the worker's estimate less the time since it made it. */
export function etaLeft(job) {
  if (!job.eta_seconds || TERMINAL.has(job.status)) return null;
  if (!job.eta_at) return job.eta_seconds;
  return Math.max(0, job.eta_seconds - (serverNow() - Date.parse(job.eta_at)) / 1000);
}

export class ProgressText {
  constructor(node) {
    this.node = node;
    this.timer = null;
  }

  /** Shows the job's progress and, while it runs with an estimate, counts it down every second. */
  show(job) {
    this.stop();
    this.write(job);
    if (!TERMINAL.has(job.status) && job.eta_seconds) this.timer = window.setInterval(() => this.write(job), COUNTDOWN_MS);
  }

  stop() {
    window.clearInterval(this.timer);
    this.timer = null;
  }

  write(job) {
    const percent = Math.round(job.overall_progress * 100);
    const left = etaLeft(job);
    const eta = left === null ? "" : left >= 1 ? `, about ${formatDuration(left)} left in this stage` : ", this stage should end any moment";
    const stage = TERMINAL.has(job.status) ? "" : ` (stage ${job.stage}: ${Math.round(job.progress * 100)} %)`;
    this.node.textContent = `${percent} % done${stage}${eta}.`;
  }
}
