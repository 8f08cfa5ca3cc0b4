// Read a splat file with Spark's own decoder and write what it read as an SPZ (Spark's encoder, in
// the file's own frame). Usage: node spark_transcode.mjs SPARK_MODULE INPUT FILE_TYPE OUTPUT
import { readFileSync, writeFileSync } from "node:fs";

const [sparkModule, input, fileType, output] = process.argv.slice(2);
const { transcodeSpz } = await import(sparkModule);
const fileBytes = new Uint8Array(readFileSync(input));
for (let attempt = 0; ; attempt++) {
  try {
    const { fileBytes: spz } = await transcodeSpz({ inputs: [{ fileBytes, fileType, pathOrUrl: input }], maxSh: 3 });
    writeFileSync(output, spz);
    break;
  } catch (error) {
    // Spark compiles its WebAssembly asynchronously on import: until then its decoder is undefined.
    if (attempt >= 200 || !String(error).includes("undefined")) throw error;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
