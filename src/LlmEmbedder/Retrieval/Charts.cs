namespace LlmEmbedder.Retrieval;

/// <summary>Charts of evaluation results (PNG, ScottPlot).</summary>
public static class Charts
{
    /// <summary>
    /// Grouped bars: one group per metric (in <see cref="RetrievalMetrics.KeyOrder"/>), one bar per model, so two
    /// models can be compared at a glance. Metrics missing from a model are drawn as gaps.
    /// </summary>
    public static void SaveMetricComparison(string path, IReadOnlyList<(string Label, IReadOnlyDictionary<string, double> Metrics)> models)
    {
        if (models.Count == 0) throw new ArgumentException("no models to chart", nameof(models));
        var metricNames = models.SelectMany(m => m.Metrics.Keys).Distinct().Order(RetrievalMetrics.KeyOrder).ToArray();
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int groupWidth = models.Count + 1;
        for (int s = 0; s < models.Count; s++)
        {
            var color = palette.GetColor(s);
            var bars = new List<ScottPlot.Bar>();
            for (int m = 0; m < metricNames.Length; m++)
            {
                if (!models[s].Metrics.TryGetValue(metricNames[m], out var value)) continue;
                bars.Add(new ScottPlot.Bar
                {
                    Position = m * groupWidth + s,
                    Value = value,
                    FillColor = color,
                    Label = value.ToString("F3", System.Globalization.CultureInfo.InvariantCulture),
                });
            }
            var series = plot.Add.Bars(bars);
            series.ValueLabelStyle.FontSize = 9;
            series.LegendText = models[s].Label;
        }
        double[] centers = metricNames.Select((_, m) => m * groupWidth + (models.Count - 1) / 2.0).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(centers, metricNames);
        plot.Axes.Bottom.TickLabelStyle.Rotation = -45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = ScottPlot.Alignment.MiddleRight;
        plot.Axes.Left.Label.Text = "score";
        plot.Axes.SetLimitsY(0, 1.1);
        plot.Axes.Margins(bottom: 0);
        plot.Axes.SetLimitsY(0, 1.1);
        plot.Title("Retrieval metrics");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        int width = Math.Max(700, 60 * metricNames.Length * models.Count);
        FileUtil.WriteAtomic(path, stream => stream.Write(plot.GetImageBytes(width, 500, ScottPlot.ImageFormat.Png)));
    }
}
