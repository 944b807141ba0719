using System.Text;
using System.Text.Json;

namespace LlmEmbedder.Retrieval;

/// <summary>
/// How the fields of a corpus row become one key text (run_dense.py's <c>--key_template</c>, default
/// "{title} {text}"). The subset of Python's <c>str.format</c> that the reference's templates use: named fields
/// <c>{name}</c> and the escapes <c>{{</c> and <c>}}</c>. Positional fields, conversions (<c>!r</c>),
/// format specs (<c>:&gt;10</c>) and attribute/index access are rejected when the template is parsed.
/// </summary>
public sealed class KeyTemplate
{
    public const string Default = "{title} {text}";

    // Literal texts and field names in template order.
    private readonly (bool IsField, string Text)[] parts;

    public string Template { get; }

    /// <summary>Distinct field names in the order they first appear.</summary>
    public IReadOnlyList<string> FieldNames { get; }

    private KeyTemplate(string template, (bool IsField, string Text)[] parts)
    {
        Template = template;
        this.parts = parts;
        FieldNames = parts.Where(p => p.IsField).Select(p => p.Text).Distinct().ToArray();
    }

    public static KeyTemplate Parse(string template)
    {
        var parts = new List<(bool, string)>();
        var literal = new StringBuilder();
        for (int i = 0; i < template.Length; i++)
        {
            char c = template[i];
            if (c == '}')
            {
                if (i + 1 < template.Length && template[i + 1] == '}') { literal.Append('}'); i++; continue; }
                throw Invalid(template, $"single '}}' at position {i} (write '}}}}' for a literal brace)");
            }
            if (c != '{') { literal.Append(c); continue; }
            if (i + 1 < template.Length && template[i + 1] == '{') { literal.Append('{'); i++; continue; }

            int close = template.IndexOfAny(['{', '}'], i + 1);
            if (close < 0 || template[close] == '{') throw Invalid(template, $"'{{' at position {i} is never closed");
            var name = template[(i + 1)..close];
            if (name.Length == 0)
                throw Invalid(template, "positional field '{}' is not supported; name a corpus field, e.g. '{text}'");
            if (name.IndexOfAny(['!', ':', '.', '[', ']']) >= 0)
                throw Invalid(template, $"field '{{{name}}}' is not supported; only plain field names such as '{{title}}'");
            if (literal.Length > 0) { parts.Add((false, literal.ToString())); literal.Clear(); }
            parts.Add((true, name));
            i = close;
        }
        if (literal.Length > 0) parts.Add((false, literal.ToString()));
        return new KeyTemplate(template, [.. parts]);
    }

    /// <summary>
    /// Fills the template from one JSON row. A string field is used as is; a number or boolean as its JSON text;
    /// null as the empty string (Python would write "None"). A field the template names but the row lacks is an
    /// error, unless <paramref name="optionalFields"/> lists it (then it renders as the empty string).
    /// </summary>
    /// <exception cref="EmbedderException">"file:line: no field 'title' (needed by key_template)"</exception>
    public string Render(JsonElement row, string file, long line, IReadOnlySet<string>? optionalFields = null)
    {
        var text = new StringBuilder();
        foreach (var (isField, value) in parts)
        {
            if (!isField) { text.Append(value); continue; }
            if (!row.TryGetProperty(value, out var field))
            {
                if (optionalFields?.Contains(value) == true) continue;
                throw EmbedderException.AtLine(file, line, $"no field '{value}' (needed by key_template)");
            }
            switch (field.ValueKind)
            {
                case JsonValueKind.String: text.Append(field.GetString()); break;
                case JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False: text.Append(field.GetRawText()); break;
                case JsonValueKind.Null: break;
                default: throw EmbedderException.AtLine(file, line, $"field '{value}' is {JsonlFile.Describe(field)}, not text (needed by key_template)");
            }
        }
        return text.ToString();
    }

    public override string ToString() => Template;

    private static EmbedderException Invalid(string template, string what) => new($"key_template \"{template}\": {what}");
}
