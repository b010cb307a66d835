"""Sequential media: tape (`tape.TapeMedium`, the interface; `tapelib`, the emulated library;
`st_drive`, a real Linux `st` drive) and optical discs (`discs`). Media know blocks, files and
discs, not pools: the pool layer (pools/tapepool.py, pools/opticalpool.py) writes its streams
onto them."""
