"""The digital twin: phone + Leica M lens + bench, rendering what the phone would capture (DESIGN.md §4)."""
