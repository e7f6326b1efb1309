// The two codec libraries ship no type declarations: the parts src/kafka/codecs.ts uses.

declare module "kafkajs-snappy" {
  const codec: () => {
    compress(encoder: { buffer: Buffer }): Promise<Buffer>;
    decompress(buffer: Buffer): Promise<Buffer>;
  };
  export default codec;
}

declare module "lz4js" {
  /** An LZ4 frame of `src`. */
  export function compress(src: Uint8Array): Uint8Array;
  /** The content of one LZ4 frame. */
  export function decompress(src: Uint8Array): Uint8Array;
}
