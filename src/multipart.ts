/**
 * Large objects: parallel ranged reads and multipart writes with part-level resume.
 * (Filled in by the large-objects work; until then nothing is multipart.)
 */
import type { Adapter } from "../adapters/types.js";
import type { CheckpointStore, WorkItem } from "../checkpoints/types.js";

export interface MultipartSettings {
  threshold: number;
  partSize: number;
  partConcurrency: number;
  maxMemory: number;
}

export interface MultipartHooks {
  onBytes(n: number): void;
  shouldStop(): boolean;
}

export class MultipartCopier {
  constructor(
    private readonly source: Adapter,
    private readonly destination: Adapter,
    private readonly store: CheckpointStore,
    private readonly settings: MultipartSettings,
    private readonly hooks: MultipartHooks,
  ) {}

  applies(_size: number): boolean {
    return false;
  }

  async copy(_item: WorkItem): Promise<number> {
    throw new Error("multipart not implemented");
  }
}
