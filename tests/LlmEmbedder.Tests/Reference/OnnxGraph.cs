using System.Runtime.InteropServices;
using System.Text;

namespace LlmEmbedder.Tests.Reference;

/// <summary>
/// The parts of an ONNX ModelProto that the weight conversion needs: nodes, initializers and the
/// graph's input/output names. Read with a small protobuf decoder of our own (onnx.proto field
/// numbers), so the test project needs no generated ONNX classes.
/// </summary>
internal sealed class OnnxGraph
{
    private readonly Dictionary<string, OnnxNode> producerByOutput = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<OnnxNode>> consumersByInput = new(StringComparer.Ordinal);

    private OnnxGraph(List<OnnxNode> nodes, Dictionary<string, OnnxTensor> initializers, List<string> inputs, List<string> outputs)
    {
        Nodes = nodes;
        Initializers = initializers;
        Inputs = inputs;
        Outputs = outputs;
        foreach (var node in nodes)
        {
            foreach (var output in node.Outputs) producerByOutput[output] = node;
            foreach (var input in node.Inputs.Where(i => i.Length > 0))
            {
                if (!consumersByInput.TryGetValue(input, out var list)) consumersByInput[input] = list = [];
                list.Add(node);
            }
        }
    }

    public IReadOnlyList<OnnxNode> Nodes { get; }
    public IReadOnlyDictionary<string, OnnxTensor> Initializers { get; }

    /// <summary>Runtime inputs (initializers that old exporters also list as inputs are left out).</summary>
    public IReadOnlyList<string> Inputs { get; }

    public IReadOnlyList<string> Outputs { get; }

    public static OnnxGraph Load(string onnxPath)
    {
        var model = new ProtoReader(File.ReadAllBytes(onnxPath));
        ReadOnlyMemory<byte>? graphBytes = null;
        while (model.TryReadTag(out var field, out var wireType))
        {
            if (field == ModelGraphField && wireType == ProtoReader.LengthDelimited) graphBytes = model.ReadBytes();
            else model.Skip(wireType);
        }
        if (graphBytes is null) throw new InvalidDataException($"{onnxPath}: ModelProto has no graph");

        var nodes = new List<OnnxNode>();
        var initializers = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        var inputs = new List<string>();
        var outputs = new List<string>();
        var graph = new ProtoReader(graphBytes.Value);
        while (graph.TryReadTag(out var field, out var wireType))
        {
            switch (field)
            {
                case 1: nodes.Add(ReadNode(new ProtoReader(graph.ReadBytes()))); break;
                case 5:
                    var tensor = ReadTensor(new ProtoReader(graph.ReadBytes()));
                    initializers[tensor.Name] = tensor;
                    break;
                case 11: inputs.Add(ReadValueInfoName(new ProtoReader(graph.ReadBytes()))); break;
                case 12: outputs.Add(ReadValueInfoName(new ProtoReader(graph.ReadBytes()))); break;
                default: graph.Skip(wireType); break;
            }
        }
        inputs.RemoveAll(initializers.ContainsKey);
        return new OnnxGraph(nodes, initializers, inputs, outputs);
    }

    public OnnxNode? Producer(string valueName) => producerByOutput.GetValueOrDefault(valueName);

    public IReadOnlyList<OnnxNode> Consumers(string valueName) =>
        consumersByInput.TryGetValue(valueName, out var list) ? list : [];

    /// <summary>A value known without running the graph: an initializer or the output of a Constant node.</summary>
    public OnnxTensor? Constant(string valueName)
    {
        if (Initializers.TryGetValue(valueName, out var initializer)) return initializer;
        return Producer(valueName) is { OpType: "Constant" } node && node.Attributes.TryGetValue("value", out var value)
            ? value.Tensor
            : null;
    }

    private const int ModelGraphField = 7;

    private static OnnxNode ReadNode(ProtoReader reader)
    {
        var inputs = new List<string>();
        var outputs = new List<string>();
        string name = "", opType = "";
        var attributes = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        while (reader.TryReadTag(out var field, out var wireType))
        {
            switch (field)
            {
                case 1: inputs.Add(reader.ReadString()); break;
                case 2: outputs.Add(reader.ReadString()); break;
                case 3: name = reader.ReadString(); break;
                case 4: opType = reader.ReadString(); break;
                case 5:
                    var attribute = ReadAttribute(new ProtoReader(reader.ReadBytes()));
                    attributes[attribute.Name] = attribute;
                    break;
                default: reader.Skip(wireType); break;
            }
        }
        return new OnnxNode(name, opType, inputs, outputs, attributes);
    }

    private static OnnxAttribute ReadAttribute(ProtoReader reader)
    {
        string name = "";
        long? intValue = null;
        float? floatValue = null;
        OnnxTensor? tensor = null;
        var ints = new List<long>();
        while (reader.TryReadTag(out var field, out var wireType))
        {
            switch (field)
            {
                case 1: name = reader.ReadString(); break;
                case 2: floatValue = BitConverter.Int32BitsToSingle((int)reader.ReadFixed32()); break;
                case 3: intValue = (long)reader.ReadVarint(); break;
                case 5: tensor = ReadTensor(new ProtoReader(reader.ReadBytes())); break;
                case 8: reader.ReadRepeatedVarint(wireType, v => ints.Add((long)v)); break;
                default: reader.Skip(wireType); break;
            }
        }
        return new OnnxAttribute(name, intValue, floatValue, ints, tensor);
    }

    private static OnnxTensor ReadTensor(ProtoReader reader)
    {
        var dims = new List<long>();
        var floatData = new List<float>();
        var int64Data = new List<long>();
        int dataType = 0;
        string name = "";
        ReadOnlyMemory<byte> raw = ReadOnlyMemory<byte>.Empty;
        while (reader.TryReadTag(out var field, out var wireType))
        {
            switch (field)
            {
                case 1: reader.ReadRepeatedVarint(wireType, v => dims.Add((long)v)); break;
                case 2: dataType = (int)reader.ReadVarint(); break;
                case 4: reader.ReadRepeatedFixed32(wireType, v => floatData.Add(BitConverter.Int32BitsToSingle((int)v))); break;
                case 7: reader.ReadRepeatedVarint(wireType, v => int64Data.Add((long)v)); break;
                case 8: name = reader.ReadString(); break;
                case 9: raw = reader.ReadBytes(); break;
                case 13: throw new InvalidDataException($"tensor '{name}' keeps its data in an external file; not supported");
                default: reader.Skip(wireType); break;
            }
        }
        return new OnnxTensor(name, dataType, [.. dims], raw, [.. floatData], [.. int64Data]);
    }

    private static string ReadValueInfoName(ProtoReader reader)
    {
        string name = "";
        while (reader.TryReadTag(out var field, out var wireType))
        {
            if (field == 1) name = reader.ReadString();
            else reader.Skip(wireType);
        }
        return name;
    }

    /// <summary>Protobuf wire format: varint tags, then varint / 64-bit / length-delimited / 32-bit payloads.</summary>
    private sealed class ProtoReader(ReadOnlyMemory<byte> buffer)
    {
        public const int Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5;
        private int position;

        private bool AtEnd => position >= buffer.Length;

        public bool TryReadTag(out int field, out int wireType)
        {
            if (AtEnd)
            {
                field = wireType = 0;
                return false;
            }
            ulong tag = ReadVarint();
            field = (int)(tag >> 3);
            wireType = (int)(tag & 7);
            return true;
        }

        public ulong ReadVarint()
        {
            var span = buffer.Span;
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (position >= span.Length) throw new InvalidDataException("protobuf: varint runs past the end");
                byte b = span[position++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return value;
            }
            throw new InvalidDataException("protobuf: varint longer than 10 bytes");
        }

        public uint ReadFixed32() => BitConverter.ToUInt32(Take(4).Span);

        public ReadOnlyMemory<byte> ReadBytes() => Take(checked((int)ReadVarint()));

        public string ReadString() => Encoding.UTF8.GetString(ReadBytes().Span);

        /// <summary>A repeated scalar arrives either packed (one length-delimited run) or one tag per element.</summary>
        public void ReadRepeatedVarint(int wireType, Action<ulong> add)
        {
            if (wireType != LengthDelimited)
            {
                add(ReadVarint());
                return;
            }
            var packed = new ProtoReader(ReadBytes());
            while (!packed.AtEnd) add(packed.ReadVarint());
        }

        public void ReadRepeatedFixed32(int wireType, Action<uint> add)
        {
            if (wireType != LengthDelimited)
            {
                add(ReadFixed32());
                return;
            }
            var packed = ReadBytes();
            if (packed.Length % 4 != 0) throw new InvalidDataException("protobuf: packed fixed32 run is not a multiple of 4 bytes");
            foreach (var v in MemoryMarshal.Cast<byte, uint>(packed.Span)) add(v);
        }

        public void Skip(int wireType)
        {
            switch (wireType)
            {
                case Varint: ReadVarint(); break;
                case Fixed64: Take(8); break;
                case LengthDelimited: ReadBytes(); break;
                case Fixed32: Take(4); break;
                default: throw new InvalidDataException($"protobuf: unsupported wire type {wireType}");
            }
        }

        private ReadOnlyMemory<byte> Take(int count)
        {
            if (count < 0 || position + count > buffer.Length)
                throw new InvalidDataException($"protobuf: field of {count} bytes runs past the end");
            var slice = buffer.Slice(position, count);
            position += count;
            return slice;
        }
    }
}

internal sealed record OnnxNode(
    string Name,
    string OpType,
    IReadOnlyList<string> Inputs,
    IReadOnlyList<string> Outputs,
    IReadOnlyDictionary<string, OnnxAttribute> Attributes);

internal sealed record OnnxAttribute(string Name, long? Int, float? Float, IReadOnlyList<long> Ints, OnnxTensor? Tensor);

/// <summary>A TensorProto; the payload stays a slice of the model bytes until asked for.</summary>
internal sealed class OnnxTensor(string name, int dataType, long[] dims, ReadOnlyMemory<byte> rawData, float[] floatData, long[] int64Data)
{
    public const int FloatType = 1;
    public const int Int64Type = 7;

    public string Name { get; } = name;

    /// <summary>onnx.TensorProto.DataType: 1 = FLOAT, 7 = INT64.</summary>
    public int DataType { get; } = dataType;

    public IReadOnlyList<long> Dims { get; } = dims;

    public long ElementCount => Dims.Aggregate(1L, (product, d) => product * d);

    public float[] ToFloats()
    {
        if (DataType != FloatType) throw new InvalidDataException($"tensor '{Name}' has data_type {DataType}, not 1 (float)");
        return CheckCount(rawData.IsEmpty ? floatData : MemoryMarshal.Cast<byte, float>(rawData.Span).ToArray());
    }

    public long[] ToInt64s()
    {
        if (DataType != Int64Type) throw new InvalidDataException($"tensor '{Name}' has data_type {DataType}, not 7 (int64)");
        return CheckCount(rawData.IsEmpty ? int64Data : MemoryMarshal.Cast<byte, long>(rawData.Span).ToArray());
    }

    private T[] CheckCount<T>(T[] values) => values.Length == ElementCount
        ? values
        : throw new InvalidDataException($"tensor '{Name}' has {values.Length} values for dims [{string.Join(", ", Dims)}]");
}
