/**
 * Object listing, page by page (1000 objects a page, GCS's maximum), in the service's order:
 * ascending UTF-8 bytes of the names. While the caller works through one page the next is
 * already being fetched, so at most two pages are held in memory.
 *
 * A 404 here always means the bucket is missing (a missing prefix is just an empty page), and is
 * mapped to a run-scoped ConfigInvalid.
 */
import type { GcsHttp } from "./http.js";
import { mapGcsError } from "./errors.js";
import type { GcsObject } from "./objects.js";

interface ListPage {
  items?: GcsObject[];
  nextPageToken?: string;
}

/** Objects whose full names start with `prefix`, one array per service page. */
export async function* listPages(
  http: GcsHttp,
  bucket: string,
  prefix: string,
  itemFields: string,
): AsyncGenerator<GcsObject[]> {
  const fetchPage = (pageToken: string | undefined): Promise<ListPage> =>
    http
      .json<ListPage>({
        method: "GET",
        path: `/storage/v1/b/${encodeURIComponent(bucket)}/o`,
        query: {
          prefix: prefix || undefined,
          maxResults: "1000",
          pageToken,
          projection: "noAcl",
          fields: `items(${itemFields}),nextPageToken`,
        },
      })
      .catch((err: unknown) => {
        throw mapGcsError(err, { bucket, object: prefix || undefined, bucketLevel: true });
      });

  let pending: Promise<ListPage> | undefined = fetchPage(undefined);
  try {
    while (pending) {
      const page: ListPage = await pending;
      pending = page.nextPageToken ? fetchPage(page.nextPageToken) : undefined;
      // A caller that stops early must not leave an unhandled rejection behind.
      pending?.catch(() => undefined);
      const items = page.items ?? [];
      if (items.length > 0) yield items;
    }
  } finally {
    pending = undefined;
  }
}
