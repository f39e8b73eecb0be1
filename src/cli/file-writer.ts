import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { InputError } from './exit-codes.js';
import { ioReason } from './fs.js';

/**
 * The campaign's files (queue entries, findings, stats, plot data) written by a thread of
 * their own: creating hundreds of files a second, and waiting for a finding's fsyncs, costs
 * the campaign's thread one message per batch of executions. Every file is still written as
 * writeFileAtomic writes it (a temporary name, flushed if durable, then a rename), and in the
 * order given: queue ids appear in order (another instance of a sync dir takes the ids above
 * the highest it has seen), a finding's finding.json comes after its other files, and the
 * stats, queued after what was found before them, never count a file that is not on disk.
 * What is in flight when the process is killed is lost, as if it had been found a moment later.
 */

/** Writes in flight past which `write` waits for the thread (a disk that cannot keep up). */
const MAX_IN_FLIGHT = 4096;

/** The shared counters: writes the thread has finished (made, or skipped after a failure)... */
const DONE = 0;
/** ...and 1 once a write failed (what failed is on the error port). */
const FAILED = 1;

/**
 * The thread, as plain JavaScript (it runs without the TypeScript build, as under the test
 * runner). A failed write is reported once and the writes after it are not made.
 */
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeFileSync } = require('node:fs');
const { counters, errors } = workerData;
let failed = false;
parentPort.on('message', (writes) => {
  for (const { file, data, durable } of writes) write(file, data, durable);
  Atomics.add(counters, ${DONE}, writes.length);
  Atomics.notify(counters, ${DONE});
});
function write(file, data, durable) {
  if (!failed) {
    const tmp = file + '.tmp-' + process.pid;
    try {
      const fd = openSync(tmp, 'w');
      try {
        writeFileSync(fd, data);
        if (durable) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
    } catch (e) {
      failed = true;
      try { unlinkSync(tmp); } catch {}
      errors.postMessage({ file, code: e.code, message: e.message });
      Atomics.store(counters, ${FAILED}, 1);
    }
  }
}
`;

interface Write {
  file: string;
  data: string | Uint8Array;
  /** fsync before the rename (see writeFileAtomic). */
  durable: boolean;
}

export class FileWriter {
  private readonly worker: Worker;
  private readonly counters = new Int32Array(new SharedArrayBuffer(8));
  private readonly errors: MessagePort;
  /** Writes not yet handed to the thread. */
  private batch: Write[] = [];
  /** Writes handed to the thread. */
  private sent = 0;
  private failure: InputError | null = null;

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.errors = port1;
    this.worker = new Worker(THREAD, {
      eval: true,
      workerData: { counters: this.counters, errors: port2 },
      transferList: [port2],
    });
    // Never what keeps the process alive: close() waits for the writes.
    this.worker.unref();
    // A thread that could not start (or died): seen between batches, before any wait for it.
    this.worker.on('error', (e) => {
      this.failure ??= new InputError(`campaign files: the writing thread failed (${e.message})`);
    });
  }

  /**
   * Queues an atomic write of `data` to `file`; it goes to the thread at the next flush.
   * Throws if an earlier write failed.
   */
  write(file: string, data: string | Uint8Array, { durable = false }: { durable?: boolean } = {}): void {
    this.check();
    this.batch.push({ file, data, durable });
  }

  /** Hands the queued writes to the thread (one message: waking a thread costs ~0.1 ms). */
  flush(): void {
    this.check();
    if (this.batch.length === 0) return;
    // Never more than MAX_IN_FLIGHT queued behind the thread (a larger batch: all before it).
    this.waitFor(Math.min(this.sent, this.sent + this.batch.length - MAX_IN_FLIGHT));
    this.sent += this.batch.length;
    this.worker.postMessage(this.batch);
    this.batch = [];
  }

  /** Waits until every write is made and ends the thread; throws if one failed. */
  close(): void {
    try {
      this.flush();
      this.waitFor(this.sent);
    } finally {
      void this.worker.terminate();
    }
    this.check();
  }

  private check(): void {
    if (this.failure === null && Atomics.load(this.counters, FAILED) === 1) {
      const m = receiveMessageOnPort(this.errors)?.message as {
        file: string;
        code?: string;
        message: string;
      };
      this.failure = new InputError(
        `${m.file}: cannot write (${ioReason(Object.assign(new Error(m.message), m))})`,
      );
    }
    if (this.failure) throw this.failure;
  }

  private waitFor(done: number): void {
    for (let d = Atomics.load(this.counters, DONE); d < done; d = Atomics.load(this.counters, DONE))
      Atomics.wait(this.counters, DONE, d);
  }
}
