/**
 * ONNX protobuf plumbing shared by the importer and the exporter: the
 * generated `onnx` namespace of onnx-proto (protobufjs), decoding with clear
 * errors, tensor payloads to typed arrays, and a small graph builder.
 *
 * protobufjs decodes int64 fields as Long objects (the `long` package is
 * installed with it); `num` turns them into plain numbers.
 */
import onnxProto from 'onnx-proto';
import { bytesOf, copyF32, dataView } from '../src/bytes.js';
import { LmflashError } from '../src/errors.js';

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type IModelProto = onnxProto.onnx.IModelProto;
export type INodeProto = onnxProto.onnx.INodeProto;
export type ITensorProto = onnxProto.onnx.ITensorProto;
export type IAttributeProto = onnxProto.onnx.IAttributeProto;
export type IValueInfoProto = onnxProto.onnx.IValueInfoProto;

export const DT = onnx.TensorProto.DataType;
export const ATTR = onnx.AttributeProto.AttributeType;

const DTYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(onnx.TensorProto.DataType).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v as number, k.toLowerCase()]),
);

export function dtypeName(t: number | null | undefined): string {
  return DTYPE_NAMES[t ?? 0] ?? `data type ${t}`;
}

/** A protobufjs int64 (number or Long) as a JS number. */
export function num(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

/** Decodes an .onnx file, turning protobuf failures into one sentence. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  if (bytes.length === 0) throw new LmflashError('the file is empty, not an ONNX model');
  let m: ModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new LmflashError(
      `not a valid ONNX model: the protobuf is truncated or corrupt (${(e as Error).message}); ` +
        'export it again, and keep any external data file next to it',
    );
  }
  if (!m.graph) throw new LmflashError('not a valid ONNX model: it has no graph (the file is truncated, or it is not an ONNX file)');
  return m;
}

export function dims(t: ITensorProto): number[] {
  return (t.dims ?? []).map((d) => num(d));
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Loads the bytes of an initializer stored in an external data file (ONNX's external data: location, offset, length). */
export type ExternalReader = (location: string, tensorName: string) => Uint8Array;

/** The raw little-endian payload of a tensor, from raw_data or its external file (null when it uses the typed fields). */
export function rawPayload(t: ITensorProto, readExternal?: ExternalReader): Uint8Array | null {
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = kv.get('location');
    if (!location) throw new LmflashError(`initializer "${t.name}" says its data is external but gives no location`);
    if (!readExternal) throw new LmflashError(`initializer "${t.name}" keeps its data in the external file "${location}", which cannot be read here`);
    const file = readExternal(location, t.name ?? '');
    const offset = kv.has('offset') ? Number(kv.get('offset')) : 0;
    const length = kv.has('length') ? Number(kv.get('length')) : file.length - offset;
    if (!(Number.isInteger(offset) && offset >= 0 && Number.isInteger(length) && length >= 0 && offset + length <= file.length)) {
      throw new LmflashError(
        `initializer "${t.name}" points at bytes ${kv.get('offset') ?? 0}..+${kv.get('length') ?? '?'} of the external file "${location}", ` +
          `which has ${file.length} bytes: the external data file is truncated or belongs to another export`,
      );
    }
    return file.subarray(offset, offset + length);
  }
  return t.rawData && t.rawData.length > 0 ? t.rawData : null;
}

function sizeError(t: ITensorProto, n: number, got: string): LmflashError {
  return new LmflashError(
    `initializer "${t.name}" (${dtypeName(t.dataType)}) has dims [${dims(t).join(', ')}], i.e. ${n} values, but its data holds ${got}: the file is corrupt`,
  );
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** A float tensor (float32, float16, bfloat16 or double) as float32 values. */
export function tensorFloats(t: ITensorProto, readExternal?: ExternalReader): Float32Array {
  const n = elementCount(dims(t));
  const raw = rawPayload(t, readExternal);
  switch (t.dataType) {
    case DT.FLOAT: {
      if (raw) {
        if (raw.length !== 4 * n) throw sizeError(t, n, `${raw.length} bytes`);
        return copyF32(raw, 0, n);
      }
      const f = t.floatData ?? [];
      if (f.length !== n) throw sizeError(t, n, `${f.length} values`);
      return Float32Array.from(f);
    }
    case DT.FLOAT16:
    case DT.BFLOAT16: {
      let u16: number[] | Uint16Array;
      if (raw) {
        if (raw.length !== 2 * n) throw sizeError(t, n, `${raw.length} bytes`);
        const dv = dataView(raw);
        u16 = Uint16Array.from({ length: n }, (_, i) => dv.getUint16(2 * i, true));
      } else {
        u16 = t.int32Data ?? [];
        if (u16.length !== n) throw sizeError(t, n, `${u16.length} values`);
      }
      const out = new Float32Array(n);
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) {
        if (t.dataType === DT.BFLOAT16) u32[i] = u16[i] << 16;
        else out[i] = halfToFloat(u16[i]);
      }
      return out;
    }
    case DT.DOUBLE: {
      if (raw) {
        if (raw.length !== 8 * n) throw sizeError(t, n, `${raw.length} bytes`);
        const dv = dataView(raw);
        return Float32Array.from({ length: n }, (_, i) => dv.getFloat64(8 * i, true));
      }
      const d = t.doubleData ?? [];
      if (d.length !== n) throw sizeError(t, n, `${d.length} values`);
      return Float32Array.from(d);
    }
    default:
      throw new LmflashError(`initializer "${t.name}" is ${dtypeName(t.dataType)}, where a float tensor was expected`);
  }
}

/** An integer or bool tensor (shapes, axes, indices) as numbers. */
export function tensorInts(t: ITensorProto, readExternal?: ExternalReader): number[] {
  const n = elementCount(dims(t));
  const raw = rawPayload(t, readExternal);
  const widths: Record<number, number> = {
    [DT.INT64]: 8, [DT.UINT64]: 8, [DT.INT32]: 4, [DT.UINT32]: 4, [DT.INT16]: 2, [DT.UINT16]: 2, [DT.INT8]: 1, [DT.UINT8]: 1, [DT.BOOL]: 1,
  };
  const w = widths[t.dataType ?? 0];
  if (!w) {
    if (t.dataType === DT.FLOAT || t.dataType === DT.DOUBLE || t.dataType === DT.FLOAT16 || t.dataType === DT.BFLOAT16)
      return Array.from(tensorFloats(t, readExternal));
    throw new LmflashError(`initializer "${t.name}" is ${dtypeName(t.dataType)}, where an integer tensor was expected`);
  }
  if (raw) {
    if (raw.length !== w * n) throw sizeError(t, n, `${raw.length} bytes`);
    const dv = dataView(raw);
    return Array.from({ length: n }, (_, i) => {
      const o = i * w;
      switch (t.dataType) {
        case DT.INT64: return Number(dv.getBigInt64(o, true));
        case DT.UINT64: return Number(dv.getBigUint64(o, true));
        case DT.INT32: return dv.getInt32(o, true);
        case DT.UINT32: return dv.getUint32(o, true);
        case DT.INT16: return dv.getInt16(o, true);
        case DT.UINT16: return dv.getUint16(o, true);
        case DT.INT8: return dv.getInt8(o);
        default: return dv.getUint8(o);
      }
    });
  }
  const vals: (number | { toNumber(): number })[] =
    t.dataType === DT.INT64 ? (t.int64Data ?? []) : t.dataType === DT.UINT64 ? (t.uint64Data ?? []) : (t.int32Data ?? []);
  if (vals.length !== n) throw sizeError(t, n, `${vals.length} values`);
  return vals.map((v) => num(v));
}

// ---------------------------------------------------------------------------
// Building graphs (the exporter and the tests)

/** An attribute value, tagged with its ONNX type. */
export type Attr =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: number[] }
  | { floats: number[] }
  | { t: ITensorProto };

export const A = {
  i: (i: number): Attr => ({ i }),
  f: (f: number): Attr => ({ f }),
  s: (s: string): Attr => ({ s }),
  ints: (ints: number[]): Attr => ({ ints }),
  floats: (floats: number[]): Attr => ({ floats }),
  t: (t: ITensorProto): Attr => ({ t }),
};

function attribute(name: string, a: Attr): IAttributeProto {
  if ('i' in a) return { name, type: ATTR.INT, i: a.i };
  if ('f' in a) return { name, type: ATTR.FLOAT, f: a.f };
  if ('s' in a) return { name, type: ATTR.STRING, s: new TextEncoder().encode(a.s) };
  if ('ints' in a) return { name, type: ATTR.INTS, ints: a.ints };
  if ('floats' in a) return { name, type: ATTR.FLOATS, floats: a.floats };
  return { name, type: ATTR.TENSOR, t: a.t };
}

export function floatTensor(name: string, shape: number[], data: Float32Array | number[]): ITensorProto {
  const a = data instanceof Float32Array ? data : Float32Array.from(data);
  if (a.length !== elementCount(shape)) throw new Error(`tensor ${name}: ${a.length} values for shape [${shape}]`);
  return { name, dims: shape, dataType: DT.FLOAT, rawData: new Uint8Array(bytesOf(a)) };
}

export function int64Tensor(name: string, shape: number[], data: number[]): ITensorProto {
  if (data.length !== elementCount(shape)) throw new Error(`tensor ${name}: ${data.length} values for shape [${shape}]`);
  const a = BigInt64Array.from(data.map((v) => BigInt(v)));
  return { name, dims: shape, dataType: DT.INT64, rawData: new Uint8Array(bytesOf(a)) };
}

/** A dimension of a graph input or output: a number or a symbolic name. */
export type Dim = number | string;

export function valueInfo(name: string, elemType: number, shape: Dim[]): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/**
 * Accumulates nodes and initializers. `op` returns its output names, made
 * unique from the node name, so graphs read like the forward pass they encode.
 */
export class GraphBuilder {
  readonly nodes: INodeProto[] = [];
  readonly initializers: ITensorProto[] = [];
  private readonly used = new Set<string>();

  unique(base: string): string {
    let name = base;
    for (let k = 1; this.used.has(name); k++) name = `${base}_${k}`;
    this.used.add(name);
    return name;
  }

  /** Adds a node; `name` also prefixes its output names. */
  op(
    opType: string,
    inputs: string[],
    opts: { name?: string; attrs?: Record<string, Attr>; outputs?: number; outputNames?: string[]; domain?: string } = {},
  ): string[] {
    const name = this.unique(opts.name ?? `/${opType}`);
    const outputs =
      opts.outputNames?.map((o) => this.unique(o)) ??
      Array.from({ length: opts.outputs ?? 1 }, (_, k) => this.unique(`${name}_output_${k}`));
    this.nodes.push({
      name,
      opType,
      domain: opts.domain ?? '',
      input: inputs,
      output: outputs,
      attribute: Object.entries(opts.attrs ?? {}).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** Adds a node with one output and returns it. */
  op1(opType: string, inputs: string[], opts: { name?: string; attrs?: Record<string, Attr>; outputNames?: string[]; domain?: string } = {}): string {
    return this.op(opType, inputs, opts)[0];
  }

  init(t: ITensorProto): string {
    const name = this.unique(t.name ?? 'const');
    this.initializers.push({ ...t, name });
    return name;
  }

  f32(name: string, shape: number[], data: Float32Array | number[]): string {
    return this.init(floatTensor(name, shape, data));
  }

  i64(name: string, shape: number[], data: number[]): string {
    return this.init(int64Tensor(name, shape, data));
  }

  /** The whole model, encoded. */
  encode(opts: {
    inputs: IValueInfoProto[];
    outputs: IValueInfoProto[];
    opset?: number;
    irVersion?: number;
    graphName?: string;
    producerName?: string;
    producerVersion?: string;
    metadata?: Record<string, string>;
    docString?: string;
  }): Uint8Array {
    const model: IModelProto = {
      irVersion: opts.irVersion ?? 8,
      opsetImport: [{ domain: '', version: opts.opset ?? 17 }],
      producerName: opts.producerName ?? 'lmflash',
      producerVersion: opts.producerVersion ?? '',
      docString: opts.docString ?? '',
      graph: {
        name: opts.graphName ?? 'main',
        node: this.nodes,
        initializer: this.initializers,
        input: opts.inputs,
        output: opts.outputs,
      },
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }
}
