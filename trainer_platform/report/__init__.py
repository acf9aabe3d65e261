"""Self-contained HTML reports of a run or a sweep (`trainer-platform report`): plotly.js inlined, works offline."""
