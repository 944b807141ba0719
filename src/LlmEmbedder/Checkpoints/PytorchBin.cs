using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Text;
using static TorchSharp.torch;

namespace LlmEmbedder.Checkpoints;

/// <summary>
/// Reads a state dict saved by <c>torch.save</c> since PyTorch 1.6 (pytorch_model.bin): a zip archive
/// holding <c>&lt;name&gt;/data.pkl</c>, a pickle of {key: tensor} whose tensors point at raw storages
/// <c>&lt;name&gt;/data/&lt;id&gt;</c>.
/// </summary>
/// <remarks>
/// TorchSharp.PyBridge can only load such a file straight into a module with its own key matching, and it
/// rebuilds a tensor as if it owned its whole storage, which is wrong for views (a slice saved with its
/// parent). This reader interprets the handful of pickle opcodes torch.save emits and never calls
/// anything named in the pickle, so a hostile file can do no more than fail to load.
/// </remarks>
internal static class PytorchBin
{
    private const int CopyBufferBytes = 1 << 20;

    /// <summary>Reads every tensor onto the CPU in its stored dtype, contiguous. The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        using var file = File.OpenRead(path);
        CheckIsZip(path, file);
        ZipArchive archive;
        try
        {
            archive = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new EmbedderException($"{path}: truncated or corrupt zip archive ({e.Message})");
        }

        using (archive)
        {
            var pickleEntry = archive.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)
                                                                   && e.FullName.IndexOf('/') == e.FullName.Length - "/data.pkl".Length)
                ?? throw new EmbedderException($"{path}: zip archive without a data.pkl; not a file written by torch.save");
            var recordPrefix = pickleEntry.FullName[..^"data.pkl".Length];
            if (archive.GetEntry(recordPrefix + "byteorder") is { } byteOrderEntry && ReadText(path, byteOrderEntry).Trim() != "little")
                throw new EmbedderException($"{path}: saved on a big-endian machine; only little-endian checkpoints are supported");

            object? root;
            try
            {
                root = new Unpickler(ReadAll(path, pickleEntry)).Load();
            }
            catch (FormatException e)
            {
                throw new EmbedderException($"{path}: cannot read {pickleEntry.FullName}: {e.Message}");
            }
            if (root is not Dictionary<object, object?> stateDict)
                throw new EmbedderException($"{path}: holds a {Describe(root)}, not a state dict; save model.state_dict() instead of the model");

            return Materialise(path, archive, recordPrefix, stateDict);
        }
    }

    private static void CheckIsZip(string path, FileStream file)
    {
        Span<byte> magic = stackalloc byte[4];
        int read = file.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
        file.Position = 0;
        if (read == 4 && magic.SequenceEqual("PK\u0003\u0004"u8))
            return;
        if (read >= 2 && magic[0] == 0x80)
            throw new EmbedderException(
                $"{path}: saved in PyTorch's legacy (before 1.6) format, which is not supported; re-save it with torch.save from PyTorch 1.6 or later, or as safetensors");
        throw new EmbedderException($"{path}: not a PyTorch checkpoint (not a zip archive written by torch.save)");
    }

    private static Dictionary<string, Tensor> Materialise(
        string path, ZipArchive archive, string recordPrefix, Dictionary<object, object?> stateDict)
    {
        using var scope = NewDisposeScope();
        var storages = new Dictionary<string, Tensor>();
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (key, value) in stateDict)
        {
            if (key is not string name)
                throw new EmbedderException($"{path}: state dict key {Describe(key)} is not a string");
            if (value is not TensorRecord record)
                throw new EmbedderException($"{path}: entry '{name}' is a {Describe(value)}, not a tensor");
            if (!storages.TryGetValue(record.Storage.Key, out var storage))
            {
                storage = ReadStorage(path, archive, recordPrefix, record.Storage);
                storages[record.Storage.Key] = storage;
            }
            tensors[name] = View(path, name, storage, record);
        }
        foreach (var tensor in tensors.Values) tensor.MoveToOuterDisposeScope();
        return tensors;
    }

    private static Tensor ReadStorage(string path, ZipArchive archive, string recordPrefix, StorageRecord storage)
    {
        var entryName = $"{recordPrefix}data/{storage.Key}";
        var entry = archive.GetEntry(entryName)
            ?? throw new EmbedderException($"{path}: storage {entryName} is missing from the archive");
        var tensor = empty(storage.Length, storage.Dtype);
        long expectedBytes = storage.Length * tensor.ElementSize;
        if (entry.Length != expectedBytes)
            throw new EmbedderException(
                $"{path}: storage {entryName} has {entry.Length} bytes but {storage.Length} elements of {storage.Dtype} need {expectedBytes}");
        if (expectedBytes == 0) return tensor;
        try
        {
            using var stream = entry.Open();
            tensor.ReadBytesFromStream(stream, CopyBufferBytes);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
        {
            throw new EmbedderException($"{path}: truncated or corrupt storage {entryName} ({e.Message})");
        }
        return tensor;
    }

    private static Tensor View(string path, string name, Tensor storage, TensorRecord record)
    {
        if (record.Shape.Length != record.Stride.Length || record.Shape.Any(d => d < 0) || record.Stride.Any(s => s < 0) || record.Offset < 0)
            throw new EmbedderException($"{path}: tensor '{name}' has an invalid shape, stride or offset");
        long numel = record.Shape.Aggregate(1L, (a, b) => a * b);
        long lastIndex = record.Offset + record.Shape.Zip(record.Stride, (d, s) => (d - 1) * s).Sum();
        if (numel > 0 && lastIndex >= storage.NumberOfElements)
            throw new EmbedderException(
                $"{path}: tensor '{name}' reaches element {lastIndex} of a storage with {storage.NumberOfElements}");

        // The common case, a tensor that is its whole storage, shares the storage's memory instead of copying it.
        bool coversStorage = record.Offset == 0 && numel == storage.NumberOfElements && IsContiguous(record.Shape, record.Stride);
        return coversStorage ? storage.view(record.Shape) : storage.as_strided(record.Shape, record.Stride, record.Offset).contiguous();
    }

    private static bool IsContiguous(long[] shape, long[] stride)
    {
        long expected = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] != 1 && stride[i] != expected) return false;
            expected *= shape[i];
        }
        return true;
    }

    private static byte[] ReadAll(string path, ZipArchiveEntry entry)
    {
        try
        {
            using var stream = entry.Open();
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            return buffer.ToArray();
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new EmbedderException($"{path}: truncated or corrupt {entry.FullName} ({e.Message})");
        }
    }

    private static string ReadText(string path, ZipArchiveEntry entry) => Encoding.ASCII.GetString(ReadAll(path, entry));

    private static string Describe(object? value) => value switch
    {
        null => "None",
        PickledObject o => $"{o.Class.Module}.{o.Class.Name} object",
        _ => value.GetType().Name,
    };

    private sealed record StorageRecord(ScalarType Dtype, string Key, long Length);

    private sealed record TensorRecord(StorageRecord Storage, long Offset, long[] Shape, long[] Stride);

    private sealed record GlobalName(string Module, string Name);

    /// <summary>Anything the pickle builds that a state dict does not need, kept inert.</summary>
    private sealed record PickledObject(GlobalName Class, object? Arguments);

    private sealed class Mark
    {
        public static readonly Mark Instance = new();
    }

    /// <summary>
    /// The pickle virtual machine, protocols 2 to 5, without object construction: globals stay names,
    /// and only the constructors torch.save uses for tensors and OrderedDict are understood.
    /// Malformed input raises FormatException.
    /// </summary>
    private sealed class Unpickler(byte[] data)
    {
        private readonly List<object?> stack = [];
        private readonly Dictionary<long, object?> memo = [];
        private int position;

        public object? Load()
        {
            while (true)
            {
                int opcodeAt = position;
                byte opcode = ReadByte();
                switch (opcode)
                {
                    case 0x80: ReadByte(); break; // PROTO
                    case 0x95: Take(8); break; // FRAME
                    case (byte)'.': return Pop(); // STOP
                    case (byte)'(': stack.Add(Mark.Instance); break;
                    case (byte)')': stack.Add(Array.Empty<object?>()); break;
                    case (byte)']': stack.Add(new List<object?>()); break;
                    case (byte)'}': stack.Add(new Dictionary<object, object?>()); break;
                    case (byte)'N': stack.Add(null); break;
                    case 0x88: stack.Add(true); break;
                    case 0x89: stack.Add(false); break;
                    case (byte)'K': stack.Add((long)ReadByte()); break;
                    case (byte)'M': stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break;
                    case (byte)'J': stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break;
                    case 0x8a: stack.Add(ReadLong(ReadByte())); break; // LONG1
                    case 0x8b: stack.Add(ReadLong(ReadLength(4))); break; // LONG4
                    case (byte)'G': stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break;
                    case (byte)'X': stack.Add(Encoding.UTF8.GetString(Take(ReadLength(4)))); break;
                    case 0x8c: stack.Add(Encoding.UTF8.GetString(Take(ReadByte()))); break; // SHORT_BINUNICODE
                    case 0x8d: stack.Add(Encoding.UTF8.GetString(Take(ReadLength(8)))); break; // BINUNICODE8
                    case (byte)'U': stack.Add(Encoding.Latin1.GetString(Take(ReadByte()))); break; // SHORT_BINSTRING
                    case (byte)'T': stack.Add(Encoding.Latin1.GetString(Take(ReadLength(4)))); break; // BINSTRING
                    case (byte)'C': stack.Add(Take(ReadByte()).ToArray()); break; // SHORT_BINBYTES
                    case (byte)'B': stack.Add(Take(ReadLength(4)).ToArray()); break; // BINBYTES
                    case (byte)'c': stack.Add(new GlobalName(ReadLine(), ReadLine())); break; // GLOBAL
                    case 0x93: // STACK_GLOBAL
                    {
                        var name = Pop() as string;
                        var module = Pop() as string;
                        if (name is null || module is null) throw Malformed(opcodeAt, "STACK_GLOBAL without two names");
                        stack.Add(new GlobalName(module, name));
                        break;
                    }
                    case (byte)'t': stack.Add(PopToMark().ToArray()); break;
                    case 0x85: stack.Add(new[] { Pop() }); break;
                    case 0x86: { var b = Pop(); var a = Pop(); stack.Add(new[] { a, b }); break; }
                    case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new[] { a, b, c }); break; }
                    case (byte)'l': stack.Add(PopToMark()); break;
                    case (byte)'a': { var item = Pop(); Peek<List<object?>>(opcodeAt).Add(item); break; }
                    case (byte)'e': { var items = PopToMark(); Peek<List<object?>>(opcodeAt).AddRange(items); break; }
                    case (byte)'d': { var dict = new Dictionary<object, object?>(); SetItems(dict, PopToMark(), opcodeAt); stack.Add(dict); break; }
                    case (byte)'s': { var value = Pop(); var key = Pop(); SetItems(Peek<Dictionary<object, object?>>(opcodeAt), [key, value], opcodeAt); break; }
                    case (byte)'u': { var items = PopToMark(); SetItems(Peek<Dictionary<object, object?>>(opcodeAt), items, opcodeAt); break; }
                    case (byte)'q': memo[ReadByte()] = PeekAny(); break; // BINPUT
                    case (byte)'r': memo[ReadLength(4)] = PeekAny(); break; // LONG_BINPUT
                    case 0x94: memo[memo.Count] = PeekAny(); break; // MEMOIZE
                    case (byte)'h': stack.Add(Recall(ReadByte(), opcodeAt)); break; // BINGET
                    case (byte)'j': stack.Add(Recall(ReadLength(4), opcodeAt)); break; // LONG_BINGET
                    case (byte)'Q': stack.Add(PersistentLoad(Pop(), opcodeAt)); break; // BINPERSID
                    case (byte)'R': { var args = Pop(); var callable = Pop(); stack.Add(Reduce(callable, args, opcodeAt)); break; }
                    case 0x81: { var args = Pop(); var cls = Pop(); stack.Add(Reduce(cls, args, opcodeAt)); break; } // NEWOBJ
                    case (byte)'b': Pop(); PeekAny(); break; // BUILD: object state (OrderedDict._metadata) is not needed
                    case (byte)'0': Pop(); break;
                    case (byte)'1': PopToMark(); break;
                    case (byte)'2': stack.Add(PeekAny()); break;
                    default:
                        throw Malformed(opcodeAt, $"unsupported pickle opcode 0x{opcode:x2}");
                }
            }
        }

        private static object? Reduce(object? callable, object? args, int opcodeAt)
        {
            if (callable is not GlobalName global)
                throw Malformed(opcodeAt, "REDUCE of something that is not a global");
            var arguments = args as object?[];
            return (global.Module, global.Name) switch
            {
                ("collections", "OrderedDict") => new Dictionary<object, object?>(),
                ("torch._utils", "_rebuild_tensor_v2" or "_rebuild_tensor") when arguments is { Length: >= 4 } =>
                    new TensorRecord(
                        arguments[0] as StorageRecord ?? throw Malformed(opcodeAt, "tensor without a storage"),
                        AsLong(arguments[1], opcodeAt),
                        AsLongs(arguments[2], opcodeAt),
                        AsLongs(arguments[3], opcodeAt)),
                // A Parameter saved instead of its data: the data is its first argument.
                ("torch._utils", "_rebuild_parameter" or "_rebuild_parameter_with_state") when arguments is { Length: >= 1 } => arguments[0],
                _ => new PickledObject(global, args),
            };
        }

        private static StorageRecord PersistentLoad(object? persistentId, int opcodeAt)
        {
            if (persistentId is not object?[] { Length: 5 } id || id[0] is not "storage" || id[1] is not GlobalName storageType || id[2] is not string key)
                throw Malformed(opcodeAt, "persistent id is not a torch storage");
            var dtype = storageType.Name switch
            {
                "FloatStorage" => ScalarType.Float32,
                "HalfStorage" => ScalarType.Float16,
                "BFloat16Storage" => ScalarType.BFloat16,
                "DoubleStorage" => ScalarType.Float64,
                "LongStorage" => ScalarType.Int64,
                "IntStorage" => ScalarType.Int32,
                "ShortStorage" => ScalarType.Int16,
                "CharStorage" => ScalarType.Int8,
                "ByteStorage" or "UntypedStorage" => ScalarType.Byte,
                "BoolStorage" => ScalarType.Bool,
                _ => throw Malformed(opcodeAt, $"unsupported storage type {storageType.Module}.{storageType.Name}"),
            };
            long length = AsLong(id[4], opcodeAt);
            return length >= 0 ? new StorageRecord(dtype, key, length) : throw Malformed(opcodeAt, $"storage of {length} elements");
        }

        private static long AsLong(object? value, int opcodeAt) =>
            value as long? ?? throw Malformed(opcodeAt, $"expected an integer, found {Describe(value)}");

        private static long[] AsLongs(object? value, int opcodeAt) =>
            value is object?[] items ? items.Select(i => AsLong(i, opcodeAt)).ToArray() : throw Malformed(opcodeAt, "expected a tuple of integers");

        private static void SetItems(Dictionary<object, object?> dict, List<object?> keysAndValues, int opcodeAt)
        {
            if (keysAndValues.Count % 2 != 0) throw Malformed(opcodeAt, "odd number of items for a dict");
            for (int i = 0; i < keysAndValues.Count; i += 2)
                dict[keysAndValues[i] ?? throw Malformed(opcodeAt, "dict key None is not supported")] = keysAndValues[i + 1];
        }

        private object? Recall(long index, int opcodeAt) =>
            memo.TryGetValue(index, out var value) ? value : throw Malformed(opcodeAt, $"memo entry {index} used before it was stored");

        private object? Pop()
        {
            if (stack.Count == 0) throw Malformed(position - 1, "stack underflow");
            var top = stack[^1];
            stack.RemoveAt(stack.Count - 1);
            if (top is Mark) throw Malformed(position - 1, "unexpected mark");
            return top;
        }

        private object? PeekAny() => stack.Count > 0 ? stack[^1] : throw Malformed(position - 1, "stack underflow");

        private T Peek<T>(int opcodeAt) where T : class =>
            PeekAny() as T ?? throw Malformed(opcodeAt, $"expected a {typeof(T).Name} on the stack");

        private List<object?> PopToMark()
        {
            int markAt = stack.FindLastIndex(item => item is Mark);
            if (markAt < 0) throw Malformed(position - 1, "no mark on the stack");
            var items = stack.GetRange(markAt + 1, stack.Count - markAt - 1);
            stack.RemoveRange(markAt, stack.Count - markAt);
            return items;
        }

        private byte ReadByte() => position < data.Length ? data[position++] : throw Malformed(position, "pickle ends early");

        private ReadOnlySpan<byte> Take(long count)
        {
            if (count < 0 || count > data.Length - position) throw Malformed(position, "pickle ends early");
            var span = data.AsSpan(position, (int)count);
            position += (int)count;
            return span;
        }

        private long ReadLength(int bytes)
        {
            ulong length = bytes == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(Take(4)) : BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
            return length <= int.MaxValue ? (long)length : throw Malformed(position, $"length {length} out of range");
        }

        private long ReadLong(long byteCount)
        {
            var value = new BigInteger(Take(byteCount), isUnsigned: false, isBigEndian: false);
            return value >= long.MinValue && value <= long.MaxValue ? (long)value : throw Malformed(position, "integer out of range");
        }

        private string ReadLine()
        {
            int end = Array.IndexOf(data, (byte)'\n', position);
            if (end < 0) throw Malformed(position, "pickle ends early");
            var line = Encoding.ASCII.GetString(data, position, end - position);
            position = end + 1;
            return line;
        }

        private static FormatException Malformed(int at, string what) => new($"{what} (pickle byte {at})");
    }
}
