using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace LlmEmbedder.Checkpoints.Export;

/// <summary>ONNX tensor element types we write (onnx.proto TensorProto.DataType).</summary>
public enum OnnxType
{
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    Int64 = 7,
}

/// <summary>
/// Writes an ONNX model (default domain, opset <see cref="Opset"/>) one node at a time: named graph inputs and outputs
/// with symbolic axes, weights as initializers, small constants, metadata. Every value name is unique; a node returns
/// the name of its output so graphs read like the code they come from. <see cref="Save"/> writes the weights inside
/// the protobuf, or beside it as external data (<see cref="ExternalDataSuffix"/>) when they are large.
/// </summary>
public sealed class OnnxGraphBuilder
{
    /// <summary>Opset 17: the first with LayerNormalization, and the newest Debian 12's onnx checker (1.12) knows.</summary>
    public const int Opset = 17;

    /// <summary>IR version 8 goes with opset 17 (onnx 1.12).</summary>
    private const long IrVersion = 8;

    /// <summary>sentence-transformers' and optimum's name for external weights: model.onnx → model.onnx_data.</summary>
    public const string ExternalDataSuffix = "_data";

    /// <summary>
    /// Weights above this go to external data. Protobuf cannot hold a message over 2 GiB; staying well below it keeps
    /// every reader (ONNX Runtime, Python's onnx.load and checker) away from its limit, and the protobuf small.
    /// </summary>
    public const long ExternalDataThreshold = 1L << 30;

    // External tensors start on page boundaries, so a reader can map them.
    private const int ExternalAlignment = 4096;

    /// <summary>
    /// Smaller initializers stay inside the protobuf even with external data: shapes and axes must be readable when
    /// the graph is checked without its weights (onnx's own external-data writer uses the same threshold).
    /// </summary>
    private const int ExternalMinBytes = 1024;

    private readonly GraphProto graph;
    private readonly List<(TensorProto Tensor, byte[] Data)> initializers = [];
    private readonly Dictionary<string, int> nameCounts = new(StringComparer.Ordinal);
    private readonly HashSet<string> names = new(StringComparer.Ordinal);
    private readonly List<(string Key, string Value)> metadata = [];

    public OnnxGraphBuilder(string graphName) => graph = new GraphProto { Name = graphName };

    /// <summary>Bytes of all initializers.</summary>
    public long WeightBytes => initializers.Sum(i => (long)i.Data.Length);

    /// <summary>A graph input; each dimension is a fixed size (long) or a named symbolic axis (string).</summary>
    public string Input(string name, OnnxType type, params object[] dims)
    {
        Claim(name);
        graph.Input.Add(ValueInfo(name, type, dims));
        return name;
    }

    /// <summary>Makes <paramref name="value"/> a graph output called <paramref name="name"/>.</summary>
    public void Output(string value, string name, OnnxType type, params object[] dims)
    {
        if (value != name) Node("Identity", [value], name);
        graph.Output.Add(ValueInfo(name, type, dims));
    }

    public void Metadata(string key, string value) => metadata.Add((key, value));

    public string Initializer(string name, ReadOnlySpan<float> values, params long[] dims)
    {
        Claim(name);
        return AddInitializer(name, OnnxType.Float, MemoryMarshal.AsBytes(values).ToArray(), dims);
    }

    public string Initializer(string name, ReadOnlySpan<sbyte> values, params long[] dims)
    {
        Claim(name);
        return AddInitializer(name, OnnxType.Int8, MemoryMarshal.AsBytes(values).ToArray(), dims);
    }

    /// <summary>A float scalar constant.</summary>
    public string Scalar(float value) => AddInitializer(UniqueName("const"), OnnxType.Float, BitConverter.GetBytes(value));

    /// <summary>A 1-D int64 constant (shapes, axes, indices).</summary>
    public string Int64s(params long[] values) =>
        AddInitializer(UniqueName("const"), OnnxType.Int64, MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), values.Length);

    public string Int64Scalar(long value) =>
        AddInitializer(UniqueName("const"), OnnxType.Int64, BitConverter.GetBytes(value));

    /// <summary>Adds a node with one output, named <paramref name="output"/> or after the op; returns the output's name.</summary>
    public string Node(string opType, IReadOnlyList<string> inputs, string? output = null, params AttributeProto[] attributes) =>
        Node(opType, inputs, 1, output, attributes)[0];

    /// <summary>Adds a node with <paramref name="outputCount"/> outputs; returns their names.</summary>
    public string[] Node(string opType, IReadOnlyList<string> inputs, int outputCount, string? output = null, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = UniqueName(opType) };
        node.Input.AddRange(inputs);
        var outputs = new string[outputCount];
        for (int i = 0; i < outputCount; i++)
        {
            if (i == 0 && output is not null) Claim(outputs[i] = output);
            else outputs[i] = UniqueName($"{node.Name}_out");
        }
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        graph.Node.Add(node);
        return outputs;
    }

    public static AttributeProto Attribute(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Attribute(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Attribute(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    /// <summary>
    /// Writes the model to <paramref name="path"/>; with weights over <see cref="ExternalDataThreshold"/> they go to
    /// path + <see cref="ExternalDataSuffix"/> beside it (a relative location, so the folder can move). Returns the
    /// files written.
    /// </summary>
    public IReadOnlyList<string> Save(string path, string producerVersion)
    {
        bool external = WeightBytes > ExternalDataThreshold;
        var dataPath = path + ExternalDataSuffix;
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "llm-embedder",
            ProducerVersion = producerVersion,
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        foreach (var (key, value) in metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });

        graph.Initializer.Clear();
        if (external)
        {
            FileUtil.WriteAtomic(dataPath, stream =>
            {
                foreach (var (tensor, data) in initializers)
                {
                    if (data.Length < ExternalMinBytes)
                    {
                        graph.Initializer.Add(Inline(tensor, data));
                        continue;
                    }
                    long offset = (stream.Position + ExternalAlignment - 1) / ExternalAlignment * ExternalAlignment;
                    stream.Write(new byte[offset - stream.Position]);
                    stream.Write(data);
                    var proto = tensor.Clone();
                    proto.DataLocation = TensorProto.Types.DataLocation.External;
                    proto.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = Path.GetFileName(dataPath) });
                    proto.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                    proto.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = data.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                    graph.Initializer.Add(proto);
                }
            });
        }
        else
        {
            foreach (var (tensor, data) in initializers) graph.Initializer.Add(Inline(tensor, data));
        }
        FileUtil.WriteAtomic(path, stream =>
        {
            using var output = new CodedOutputStream(stream, leaveOpen: true);
            model.WriteTo(output);
        });
        graph.Initializer.Clear();
        return external ? [path, dataPath] : [path];
    }

    private static TensorProto Inline(TensorProto tensor, byte[] data)
    {
        var proto = tensor.Clone();
        proto.RawData = UnsafeByteOperations.UnsafeWrap(data);
        return proto;
    }

    /// <param name="name">Already claimed.</param>
    private string AddInitializer(string name, OnnxType type, byte[] data, params long[] dims)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type };
        tensor.Dims.AddRange(dims);
        initializers.Add((tensor, data));
        return name;
    }

    private static ValueInfoProto ValueInfo(string name, OnnxType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var dim in dims)
            shape.Dim.Add(dim switch
            {
                string symbol => new TensorShapeProto.Types.Dimension { DimParam = symbol },
                long size => new TensorShapeProto.Types.Dimension { DimValue = size },
                int size => new TensorShapeProto.Types.Dimension { DimValue = size },
                _ => throw new ArgumentException($"dimension {dim} of {name} is neither a size nor a symbolic axis"),
            });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    private void Claim(string name)
    {
        if (!names.Add(name)) throw new InvalidOperationException($"ONNX value name '{name}' used twice");
    }

    /// <summary>A name not used yet, claimed.</summary>
    private string UniqueName(string stem)
    {
        while (true)
        {
            int count = nameCounts.GetValueOrDefault(stem);
            nameCounts[stem] = count + 1;
            var name = $"{stem}_{count}";
            if (names.Add(name)) return name;
        }
    }
}
