import { decompress as zstdDecompress } from "fzstd";
import { CompressionCodecs, CompressionTypes } from "kafkajs";
import SnappyCodec from "kafkajs-snappy";
import * as lz4 from "lz4js";

/**
 * kafkajs reads only uncompressed and gzip batches by itself. A batch compressed with snappy,
 * lz4 or zstd — what a Java producer, kcat or Kafka Connect writes with `compression.type` set,
 * or any topic configured to recompress — makes it throw KafkaJSNotImplemented while fetching:
 * a non-retriable crash, after which kafkajs never restarts the consumer. One such message on a
 * topic would stop its consumers for good. Registering the codecs (pure-JS libraries, no
 * native builds) lets every consumer read them.
 *
 * This service's own producers never compress (their messages are small), so zstd needs only
 * a decoder; its encoder refuses, loudly, instead of writing something no codec wrote.
 */
interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

const lz4Codec = (): Codec => ({
  compress: async (encoder) => Buffer.from(lz4.compress(encoder.buffer)),
  decompress: async (buffer) => Buffer.from(lz4.decompress(buffer)),
});

const zstdCodec = (): Codec => ({
  compress: async () => {
    throw new Error("zstd compression is not used by this service (decompression only)");
  },
  decompress: async (buffer) => Buffer.from(zstdDecompress(buffer)),
});

let registered = false;

/** Idempotent; src/kafka/client.ts calls it on import, for every kafkajs client in the process. */
export function registerCompressionCodecs(): void {
  if (registered) return;
  registered = true;
  CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
  CompressionCodecs[CompressionTypes.LZ4] = lz4Codec;
  CompressionCodecs[CompressionTypes.ZSTD] = zstdCodec;
}
