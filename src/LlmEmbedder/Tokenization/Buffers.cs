using System.Runtime.CompilerServices;

namespace LlmEmbedder.Tokenization;

/// <summary>A reusable, growable run of UTF-16 code units (a per-thread scratch buffer of the tokenizer).</summary>
internal sealed class CharBuffer
{
    private char[] items = new char[256];

    public int Count { get; private set; }

    public Span<char> Span => items.AsSpan(0, Count);

    public void Clear() => Count = 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Append(char c)
    {
        if (Count == items.Length) Array.Resize(ref items, items.Length * 2);
        items[Count++] = c;
    }

    public void AppendCodePoint(int codePoint)
    {
        if (codePoint < 0x10000)
        {
            Append((char)codePoint);
        }
        else
        {
            Append((char)(0xD7C0 + (codePoint >> 10)));
            Append((char)(0xDC00 | (codePoint & 0x3FF)));
        }
    }

    public void Append(ReadOnlySpan<char> text)
    {
        if (Count + text.Length > items.Length) Array.Resize(ref items, Math.Max(items.Length * 2, Count + text.Length));
        text.CopyTo(items.AsSpan(Count));
        Count += text.Length;
    }
}

/// <summary>A reusable, growable run of ints (code points or token ids).</summary>
internal sealed class IntBuffer
{
    private int[] items = new int[256];

    public int Count { get; private set; }

    public Span<int> Span => items.AsSpan(0, Count);

    public int this[int index]
    {
        get => items[index];
        set => items[index] = value;
    }

    public void Clear() => Count = 0;

    /// <summary>Drops everything after the first <paramref name="count"/> items.</summary>
    public void Truncate(int count) => Count = Math.Min(Count, count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Append(int value)
    {
        if (Count == items.Length) Array.Resize(ref items, items.Length * 2);
        items[Count++] = value;
    }

    public void Append(ReadOnlySpan<int> values)
    {
        if (Count + values.Length > items.Length) Array.Resize(ref items, Math.Max(items.Length * 2, Count + values.Length));
        values.CopyTo(items.AsSpan(Count));
        Count += values.Length;
    }
}
