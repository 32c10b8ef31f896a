/**
 * Parser for the IDX file format that MNIST ships in: a 4-byte magic number
 * (`0x00 0x00 <dtype> <ndim>`), `ndim` big-endian uint32 dimensions, then the data, row-major.
 */
import { DataFormatError } from '../errors.js';

/** The only IDX element type this parser reads: unsigned bytes. */
export const IDX_UBYTE = 0x08;

/** The dimensions and raw element bytes of one IDX file. */
export interface IdxArray {
  /** Size of each dimension, outermost first, e.g. `[10000, 28, 28]`. */
  dims: number[];
  /** The elements as unsigned bytes, row-major; a view into the parsed buffer, not a copy. */
  data: Uint8Array;
}

const REDOWNLOAD = 're-download it with `npm run download-mnist`';

function hex(bytes: ArrayLike<number>): string {
  return Array.from(bytes, (b) => '0x' + b.toString(16).padStart(2, '0')).join(' ');
}

/**
 * Parses an uncompressed IDX file of unsigned bytes and returns its `dims` and a `Uint8Array`
 * view of its data.
 *
 * @param bytes - The whole file, already gunzipped.
 * @param name - The file name or path, used in error messages.
 * @throws DataFormatError if the magic number is wrong, the dtype is not ubyte (0x08), the file is
 *   shorter than its header says (truncated), or longer (trailing garbage).
 */
export function parseIdx(bytes: Uint8Array, name: string): IdxArray {
  if (bytes.length < 4) {
    throw new DataFormatError(
      `${name}: file is ${bytes.length} bytes, too short for an IDX header (at least 4); ` +
        `it is truncated or empty, ${REDOWNLOAD}`,
    );
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataFormatError(
      `${name}: bad IDX magic number: found ${hex(bytes.subarray(0, 4))}, expected ` +
        `0x00 0x00 <dtype> <ndim>; this is not an uncompressed IDX file, ${REDOWNLOAD}`,
    );
  }
  const dtype = bytes[2];
  const ndim = bytes[3];
  if (dtype !== IDX_UBYTE) {
    throw new DataFormatError(
      `${name}: unsupported IDX dtype 0x${dtype.toString(16).padStart(2, '0')}, only 0x08 ` +
        `(unsigned byte) is supported; use the original MNIST files (\`npm run download-mnist\`)`,
    );
  }
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < headerBytes) {
    throw new DataFormatError(
      `${name}: truncated IDX header: expected ${headerBytes} bytes for ${ndim} dimensions, ` +
        `got ${bytes.length}; ${REDOWNLOAD}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const expected = headerBytes + count;
  if (bytes.length < expected) {
    throw new DataFormatError(
      `${name}: truncated IDX file: dims [${dims.join(', ')}] need ${expected} bytes, ` +
        `got ${bytes.length}; ${REDOWNLOAD}`,
    );
  }
  if (bytes.length > expected) {
    throw new DataFormatError(
      `${name}: ${bytes.length - expected} bytes of trailing garbage after the IDX data ` +
        `(expected ${expected} bytes, got ${bytes.length}); ${REDOWNLOAD}`,
    );
  }
  return { dims, data: bytes.subarray(headerBytes, expected) };
}
