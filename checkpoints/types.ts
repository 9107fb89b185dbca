/**
 * The checkpoint store contract: the single record of a job's progress.
 *
 * The engine never sees SQL. It writes the plan in batches, then takes work in batches
 * (`claim`) and reports each object's outcome (`complete` / `fail`). Every outcome is durable
 * when the call returns (before the engine reports it), so a crash at any instant loses at most
 * work that was never recorded as done. Implementations: SQLite (embedded, one process per job).
 */

/** What the plan says to do with a key. */
export type Action =
  | "copy" // missing at destination
  | "update" // differs
  | "skip" // same
  | "extra" // only at destination, kept
  | "delete"; // only at destination, to be deleted (--delete)

/** Whether the action is work for the copier (the rest are done as soon as planned). */
export function isWork(action: Action): boolean {
  return action === "copy" || action === "update" || action === "delete";
}

export type ObjectState = "pending" | "done" | "failed";

export type JobStatus = "planning" | "copying" | "done" | "failed" | "interrupted";

/** What decides the plan; a resume must use the same, so they are stored with the job. */
export interface JobOptions {
  include: string[];
  exclude: string[];
  compare: "default" | "checksum" | "size-only";
  delete: boolean;
  /** Endpoint settings given as flags (never credentials), so `resume` reaches the same service. */
  endpoints?: { s3Endpoint?: string; s3Region?: string; s3ForcePathStyle?: boolean };
}

export interface JobRecord {
  id: string;
  source: string;
  destination: string;
  options: JobOptions;
  status: JobStatus;
  planComplete: boolean;
  createdAt: number;
  updatedAt: number;
  /** How many times this job has been started or resumed. */
  runs: number;
}

export interface PlanRow {
  key: string;
  action: Action;
  reason: string;
  size: number;
  mtime?: number;
  md5?: string;
  /** Set when the planner already knows the object cannot be carried out. */
  error?: string;
}

export interface WorkItem {
  id: number;
  key: string;
  action: Action;
  size: number;
  mtime?: number;
  md5?: string;
  attempts: number;
}

export interface ObjectRecord extends WorkItem {
  reason: string;
  state: ObjectState;
  error?: string;
  bytesDone: number;
  partsDone: number;
  partsTotal: number;
}

export interface ActionCounts {
  objects: number;
  bytes: number;
}

export interface Counts {
  byAction: Record<Action, ActionCounts>;
  byState: Record<ObjectState, ActionCounts>;
  /** Bytes of pending copy/update work. */
  pendingBytes: number;
}

export interface UploadRecord {
  key: string;
  uploadId: string;
  partSize: number;
  /** Size and source identity the upload was started for; a change means it cannot continue. */
  size: number;
  mtime?: number;
  parts: CommittedPart[];
  /** Parts 1..hashedParts are in `hashState`, the saved whole-object MD5 state. */
  hashedParts: number;
  hashState?: Uint8Array;
  /** The kind of checksum the upload's parts carry (checkpoints of schema 1 hold MD5 ones). */
  partChecksum: PartChecksumKind;
}

export type PartChecksumKind = "md5" | "crc32c";

export interface CommittedPart {
  partNumber: number;
  size: number;
  /**
   * The checksum the part was sent with: hex MD5, or base64 CRC32C where partChecksum says so
   * (stored in the parts table's `md5` column, named when parts only carried MD5s).
   */
  checksum: string;
  etag: string;
}

export interface CheckpointStore {
  readonly job: JobRecord;

  /** Append plan rows (one transaction per call). Keys already planned are left as they are. */
  addPlanRows(rows: PlanRow[]): void;
  /** The plan is whole: resuming will not list again. */
  finishPlan(): void;
  /** Forget every row and upload: a new run over the same pair. */
  resetPlan(): void;
  /** Key of the last planned row, or undefined (resume planning after it). */
  lastPlannedKey(): string | undefined;

  /** Failed rows become pending again (a resume retries them); the claim cursor restarts. */
  requeueFailed(): void;
  /** Up to `limit` pending rows not yet handed out by this store instance, in plan order. */
  claim(limit: number): WorkItem[];
  complete(id: number, bytes: number, attempts?: number): void;
  /**
   * Several completions in one transaction (group commit): durable together when it returns.
   * `size`: the row's planned size, if the caller has it (rows done in one try with exactly that
   * many bytes are recorded together, in one statement).
   */
  completeMany(done: { id: number; bytes: number; attempts?: number; size?: number }[]): void;
  /** `attempts`: how many tries this run made (default 1); added to the row's count. */
  fail(id: number, error: string, attempts?: number): void;
  /** Record bytes moved for an object still in progress (large objects). */
  progress(id: number, bytesDone: number, partsDone: number, partsTotal: number): void;

  counts(): Counts;
  /** Every row in key order, for reports; streamed, not loaded whole. */
  rows(): IterableIterator<ObjectRecord>;
  setStatus(status: JobStatus): void;

  getUpload(key: string): UploadRecord | undefined;
  saveUpload(upload: Omit<UploadRecord, "parts" | "hashedParts" | "hashState">): void;
  /** Save the whole-object hash state after parts 1..hashedParts were hashed in order. */
  saveHashState(key: string, hashedParts: number, state: Uint8Array): void;
  savePart(key: string, part: CommittedPart): void;
  deleteUpload(key: string): void;
  uploads(): UploadRecord[];

  close(): void;
}
