using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Checkpoints;

/// <summary>
/// The safetensors format: an 8-byte little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the raw little-endian bytes.
/// </summary>
public static class Safetensors
{
    private const int CopyBufferBytes = 1 << 20;
    private const long MaxHeaderBytes = 100_000_000;

    private static readonly Dictionary<string, ScalarType> DtypeByName = new()
    {
        ["F64"] = ScalarType.Float64, ["F32"] = ScalarType.Float32, ["F16"] = ScalarType.Float16,
        ["BF16"] = ScalarType.BFloat16, ["I64"] = ScalarType.Int64, ["I32"] = ScalarType.Int32,
        ["I16"] = ScalarType.Int16, ["I8"] = ScalarType.Int8, ["U8"] = ScalarType.Byte, ["BOOL"] = ScalarType.Bool,
    };

    private static readonly Dictionary<ScalarType, long> ElementBytes = new()
    {
        [ScalarType.Float64] = 8, [ScalarType.Float32] = 4, [ScalarType.Float16] = 2, [ScalarType.BFloat16] = 2,
        [ScalarType.Int64] = 8, [ScalarType.Int32] = 4, [ScalarType.Int16] = 2, [ScalarType.Int8] = 1,
        [ScalarType.Byte] = 1, [ScalarType.Bool] = 1,
    };

    private static readonly Dictionary<ScalarType, string> NameByDtype = DtypeByName.ToDictionary(p => p.Value, p => p.Key);

    /// <summary>Reads every tensor of a file onto the CPU in its stored dtype. The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        using var stream = File.OpenRead(path);
        long fileLength = stream.Length;
        var (header, headerLength) = ReadHeaderJson(path, stream);

        long dataStart = 8 + headerLength;
        var entries = header.Where(p => p.Key != "__metadata__")
            .Select(p => (Name: p.Key, Entry: ParseEntry(path, p.Key, p.Value)))
            .OrderBy(e => e.Entry.Begin)
            .ToList();
        var tensors = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (name, entry) in entries)
            {
                if (dataStart + entry.End > fileLength)
                    throw new EmbedderException(
                        $"{path}: truncated: tensor '{name}' ends at byte {dataStart + entry.End} but the file has {fileLength} bytes");
                long expectedBytes = entry.Bytes;
                if (expectedBytes != entry.End - entry.Begin)
                    throw new EmbedderException(
                        $"{path}: tensor '{name}' has {entry.End - entry.Begin} bytes but shape [{string.Join(", ", entry.Shape)}] of {entry.DtypeName} needs {expectedBytes}");
                var tensor = empty(entry.Shape, entry.Dtype);
                tensors[name] = tensor;
                stream.Position = dataStart + entry.Begin;
                if (expectedBytes > 0) tensor.ReadBytesFromStream(stream, CopyBufferBytes);
            }
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        return tensors;
    }

    /// <summary>Reads only the header: tensor names with dtype names and shapes.</summary>
    public static IReadOnlyDictionary<string, (string Dtype, long[] Shape)> ReadHeader(string path)
    {
        using var stream = File.OpenRead(path);
        var (header, _) = ReadHeaderJson(path, stream);
        return header.Where(p => p.Key != "__metadata__")
            .ToDictionary(p => p.Key, p => { var e = ParseEntry(path, p.Key, p.Value); return (e.DtypeName, e.Shape); });
    }

    /// <summary>Reads the 8-byte length and the JSON header, leaving the stream at the first data byte.</summary>
    private static (JsonObject Header, long Length) ReadHeaderJson(string path, Stream stream)
    {
        long fileLength = stream.Length;
        var headerLengthBytes = new byte[8];
        if (stream.ReadAtLeast(headerLengthBytes, 8, throwOnEndOfStream: false) != 8)
            throw new EmbedderException($"{path}: not a safetensors file or truncated (file {fileLength} bytes, shorter than the 8-byte header length)");
        long headerLength = BitConverter.ToInt64(headerLengthBytes);
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || 8 + headerLength > fileLength)
            throw new EmbedderException($"{path}: not a safetensors file or truncated (header length {headerLength}, file {fileLength} bytes)");

        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        try
        {
            var header = JsonNode.Parse(headerBytes) as JsonObject ?? throw new JsonException("not a JSON object");
            return (header, headerLength);
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new EmbedderException($"{path}: safetensors header is not valid JSON ({e.Message})");
        }
    }

    /// <summary>
    /// Writes tensors (any device, any layout) in name order, with metadata {"format": "pt"} as
    /// Python's safetensors writes it. The file appears atomically: written aside, then renamed.
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = tensors.Keys.OrderBy(n => n, StringComparer.Ordinal).ToList();
        var header = new JsonObject
        {
            ["__metadata__"] = new JsonObject((metadata ?? new Dictionary<string, string> { ["format"] = "pt" })
                .Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value)))),
        };
        long offset = 0;
        foreach (var name in names)
        {
            var t = tensors[name];
            if (!NameByDtype.TryGetValue(t.dtype, out var dtypeName))
                throw new EmbedderException($"safetensors cannot store tensor '{name}' of dtype {t.dtype}");
            long size = t.NumberOfElements * t.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = dtypeName,
                ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + size),
            };
            offset += size;
        }

        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padding = (8 - headerBytes.Length % 8) % 8;
        FileUtil.WriteAtomic(path, stream =>
        {
            using var buffered = new BufferedStream(stream, CopyBufferBytes);
            buffered.Write(BitConverter.GetBytes((long)(headerBytes.Length + padding)));
            buffered.Write(headerBytes);
            for (int i = 0; i < padding; i++) buffered.WriteByte((byte)' ');
            foreach (var name in names)
            {
                using var scope = NewDisposeScope();
                var cpu = tensors[name].detach().cpu().contiguous();
                if (cpu.NumberOfElements > 0) cpu.WriteBytesToStream(buffered, CopyBufferBytes);
            }
        });
    }

    private sealed record Entry(string DtypeName, ScalarType Dtype, long[] Shape, long Begin, long End)
    {
        /// <summary>The bytes the shape and dtype need (checked, so a corrupt shape cannot wrap around).</summary>
        public long Bytes { get; } = checked(Shape.Aggregate(1L, (n, d) => checked(n * d)) * ElementBytes[Dtype]);
    }

    private static Entry ParseEntry(string path, string name, JsonNode? node)
    {
        try
        {
            var dtypeName = node!["dtype"]!.GetValue<string>();
            if (!DtypeByName.TryGetValue(dtypeName, out var dtype))
                throw new EmbedderException($"{path}: tensor '{name}' has unsupported dtype {dtypeName}");
            var shape = node["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
            if (shape.Any(d => d < 0))
                throw new EmbedderException($"{path}: tensor '{name}' has a negative dimension");
            var offsets = node["data_offsets"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0])
                throw new EmbedderException($"{path}: tensor '{name}' has invalid data_offsets");
            return new Entry(dtypeName, dtype, shape, offsets[0], offsets[1]);
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException or OverflowException)
        {
            throw new EmbedderException($"{path}: malformed safetensors header entry for '{name}'");
        }
    }
}
