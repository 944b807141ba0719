using System.Text;

namespace LlmEmbedder.Checkpoints;

/// <summary>NumPy's .npy format, version 1.0: a little-endian float32 ('&lt;f4') matrix in C order.</summary>
public static class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0];

    public static void WriteFloat32(string path, ReadOnlySpan<float> values, int rows, int columns)
    {
        if ((long)rows * columns != values.Length)
            throw new ArgumentException($"{values.Length} values do not make a {rows}x{columns} matrix");
        var header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}";
        // Magic (6) + version (2) + header length (2) + header + '\n', padded with spaces to a multiple of 64.
        int unpadded = Magic.Length + 2 + header.Length + 1;
        header = header.PadRight(header.Length + (64 - unpadded % 64) % 64) + "\n";
        var valuesCopy = values.ToArray();
        FileUtil.WriteAtomic(path, stream =>
        {
            stream.Write(Magic);
            stream.Write(BitConverter.GetBytes((ushort)header.Length));
            stream.Write(Encoding.ASCII.GetBytes(header));
            stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(valuesCopy.AsSpan()));
        });
    }

    /// <summary>Reads a 2-D '&lt;f4' C-order .npy file written by NumPy or by <see cref="WriteFloat32"/>.</summary>
    public static (float[] Values, int Rows, int Columns) ReadFloat32(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic.AsSpan(0, 6)))
            throw new EmbedderException($"{path}: not a .npy file");
        int headerLength = bytes[8] | bytes[9] << 8;
        var header = Encoding.ASCII.GetString(bytes, 10, headerLength);
        if (!header.Contains("'<f4'") || header.Contains("'fortran_order': True"))
            throw new EmbedderException($"{path}: expected a C-order float32 matrix, header {header.Trim()}");
        var shape = header[(header.IndexOf('(') + 1)..header.IndexOf(')')]
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        if (shape.Length != 2) throw new EmbedderException($"{path}: expected a 2-D matrix, shape ({string.Join(",", shape)})");
        var values = new float[shape[0] * shape[1]];
        Buffer.BlockCopy(bytes, 10 + headerLength, values, 0, values.Length * 4);
        return (values, shape[0], shape[1]);
    }
}
