/**
 * List Blobs pages read without the SDK (adapters/azure/list.ts): the fields the engine uses,
 * from XML as Azure writes it. Azurite's pages go through the same code in tests/adapters.
 */
import { describe, expect, it } from "vitest";
import { parseListPage, xmlText } from "../../adapters/azure/list.js";
import { toObjectInfo } from "../../adapters/azure/metadata.js";

const page = (blobs: string, next = "<NextMarker />") =>
  `\ufeff<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="https://acct.blob.core.windows.net/" ContainerName="c"><Prefix>p/</Prefix><MaxResults>5000</MaxResults><Blobs>${blobs}</Blobs>${next}</EnumerationResults>`;

const full = `<Blob><Name>p/a &amp; b &lt;1&gt; &#x1F600;.txt</Name><Properties><Creation-Time>Mon, 30 Nov 2026 10:00:00 GMT</Creation-Time><Last-Modified>Mon, 30 Nov 2026 10:00:01 GMT</Last-Modified><Etag>0x8DD1234567890AB</Etag><Content-Length>4096</Content-Length><Content-Type>text/plain; charset=&quot;utf-8&quot;</Content-Type><Content-Encoding>gzip</Content-Encoding><Content-Language>en</Content-Language><Content-CRC64 /><Content-MD5>1B2M2Y8AsgTpgAmY7PhCfg==</Content-MD5><Cache-Control>max-age=60</Cache-Control><Content-Disposition>attachment; filename="x"</Content-Disposition><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier></Properties><Metadata><mtime>2026-11-30T10:00:00.5Z</mtime><Name>not the blob's name</Name><cmx_my_2dkey>v &amp; w</cmx_my_2dkey></Metadata><OrMetadata /></Blob>`;

describe("parseListPage", () => {
  it("reads name, properties and metadata as the SDK's page gives them", () => {
    const { blobs, nextMarker } = parseListPage(page(full));
    expect(nextMarker).toBeUndefined();
    expect(blobs).toHaveLength(1);
    const [b] = blobs;
    expect(b.name).toBe("p/a & b <1> \u{1F600}.txt");
    expect(b.properties).toEqual({
      contentLength: 4096,
      lastModified: new Date("2026-11-30T10:00:01Z"),
      etag: "0x8DD1234567890AB",
      contentMD5: new Uint8Array(Buffer.from("d41d8cd98f00b204e9800998ecf8427e", "hex")),
      contentType: 'text/plain; charset="utf-8"',
      cacheControl: "max-age=60",
      contentEncoding: "gzip",
      contentDisposition: 'attachment; filename="x"',
      contentLanguage: "en",
    });
    expect(b.metadata).toEqual({ mtime: "2026-11-30T10:00:00.5Z", Name: "not the blob's name", "cmx_my_2dkey": "v & w" });
    const info = toObjectInfo("a", b.properties, b.metadata);
    expect(info).toMatchObject({ size: 4096, mtime: Date.parse("2026-11-30T10:00:00.5Z"), md5: "d41d8cd98f00b204e9800998ecf8427e", metadata: { "my-key": "v & w", name: "not the blob's name" } });
  });

  it("decodes names Azure sent percent-encoded, leaves empty fields unset, and returns the next marker", () => {
    const encoded = `<Blob><Name Encoded="true">p%2Fbad%EF%BF%BEname%01</Name><Properties><Last-Modified>Tue, 01 Dec 2026 00:00:00 GMT</Last-Modified><Etag>0x1</Etag><Content-Length>0</Content-Length><Content-Type /><Content-Encoding /><Content-MD5 /><BlobType>BlockBlob</BlobType></Properties><Metadata /></Blob>`;
    const plain = `<Blob><Name>p/z</Name><Properties><Content-Length>7</Content-Length></Properties></Blob>`;
    const { blobs, nextMarker } = parseListPage(page(encoded + plain, "<NextMarker>2!72!MDAwMDA2IXAvejEhMDAwMDI4ITk5OTktMTItMzFUMjM6NTk6NTkuOTk5OTk5OVoh</NextMarker>"));
    expect(nextMarker).toBe("2!72!MDAwMDA2IXAvejEhMDAwMDI4ITk5OTktMTItMzFUMjM6NTk6NTkuOTk5OTk5OVoh");
    expect(blobs.map((b) => b.name)).toEqual(["p/bad\ufffename\u0001", "p/z"]);
    expect(blobs[0].properties).toEqual({ contentLength: 0, lastModified: new Date("2026-12-01T00:00:00Z"), etag: "0x1" });
    expect(blobs[0].metadata).toEqual({});
    expect(blobs[1]).toEqual({ name: "p/z", properties: { contentLength: 7 }, metadata: {} });
    expect(parseListPage(page("", "<NextMarker></NextMarker>"))).toEqual({ blobs: [] });
  });

  it("refuses a page it cannot read rather than listing part of it", () => {
    expect(() => parseListPage(page("<Blob><Name>a</Name><Properties>"))).toThrow(/not closed/);
    expect(() => parseListPage(page("<Blob><Properties /></Blob>"))).toThrow(/without a <Name>/);
    const whole = page(full, "<NextMarker>m2</NextMarker>");
    expect(parseListPage(whole + "\n").nextMarker).toBe("m2");
    for (const cut of [whole.indexOf("</Blobs>"), whole.indexOf("<NextMarker>"), whole.length - 3]) {
      expect(() => parseListPage(whole.slice(0, cut))).toThrow(/cut short/);
    }
  });
});

describe("xmlText", () => {
  it("decodes the five entities and character references, and nothing else", () => {
    expect(xmlText("a&amp;b&lt;c&gt;d&quot;e&apos;f&#65;&#x42;&#x1F600;")).toBe("a&b<c>d\"e'fAB\u{1F600}");
    expect(xmlText("&amp;lt; &nbsp; 100%")).toBe("&lt; &nbsp; 100%");
  });
});
