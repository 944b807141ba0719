using LlmEmbedder.Retrieval;
using Spectre.Console;

namespace LlmEmbedder.Cli.Commands;

/// <summary>Retrieval metrics on the console: eval's table and training's before/after table, one layout.</summary>
internal static class MetricTable
{
    public static void Print(string label, IReadOnlyDictionary<string, double> metrics)
    {
        var table = new Table().AddColumn("metric").AddColumn(new TableColumn(Markup.Escape(label)).RightAligned());
        foreach (var (name, value) in metrics) table.AddRow(name, Value(value));
        AnsiConsole.Write(table);
    }

    /// <summary>
    /// A model against a baseline, with a last column model − baseline (<see cref="MetricChange"/>): positive where the
    /// model is better. <paramref name="baselineFirst"/> puts the baseline's column first, as training's "before".
    /// </summary>
    public static void PrintComparison(string modelLabel, IReadOnlyDictionary<string, double> model, string baselineLabel,
        IReadOnlyDictionary<string, double> baseline, bool baselineFirst, string changeLabel)
    {
        string[] labels = baselineFirst ? [baselineLabel, modelLabel] : [modelLabel, baselineLabel];
        var table = new Table().AddColumn("metric");
        foreach (var label in labels.Append(changeLabel)) table.AddColumn(new TableColumn(Markup.Escape(label)).RightAligned());
        foreach (var row in MetricChange.Compare(model, baseline))
        {
            string[] values = baselineFirst ? [Value(row.Baseline), Value(row.Model)] : [Value(row.Model), Value(row.Baseline)];
            table.AddRow([row.Metric, .. values, double.IsNaN(row.Change) ? "-" : $"{row.Change:+0.0000;-0.0000;0.0000}"]);
        }
        AnsiConsole.Write(table);
    }

    private static string Value(double value) => double.IsNaN(value) ? "-" : $"{value:F4}";
}
