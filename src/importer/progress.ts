/** One progress model for both front ends: a fraction in [0,1] (or unknown), with listeners. */
import { EventEmitter } from 'node:events';
import { Transform, type TransformCallback } from 'node:stream';

export class Progress extends EventEmitter<{ update: [Progress] }> {
  total: number | undefined;
  done = 0;
  phase = 'starting';
  private explicit: number | undefined;
  private counting = true;

  /** The fraction done, when known. */
  fraction(): number | undefined {
    if (this.explicit !== undefined) return this.explicit;
    if (!this.total) return undefined;
    return Math.min(1, this.done / this.total);
  }

  setPhase(phase: string): void {
    this.phase = phase;
    this.emit('update', this);
  }

  /** Bytes read from the source. */
  add(n: number): void {
    if (!this.counting) return;
    this.done += n;
    this.emit('update', this);
  }

  /** Start counting source bytes again from `done` (a transfer that starts over, or continues an earlier run). */
  reset(done = 0): void {
    this.counting = true;
    this.explicit = undefined;
    this.done = done;
    this.emit('update', this);
  }

  /** Forget the bytes counted so far (a tool takes over the reporting). */
  restart(): void {
    this.counting = false;
    this.done = 0;
    this.total = undefined;
    this.explicit = 0;
    this.emit('update', this);
  }

  /** A fraction reported by a tool (qemu-img convert -p). */
  set(fraction: number): void {
    this.explicit = Math.max(this.explicit ?? 0, Math.min(1, fraction));
    this.emit('update', this);
  }

  /** A stream stage that counts bytes into this progress. */
  counter(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) => {
        this.add(chunk.length);
        cb(null, chunk);
      },
    });
  }
}
