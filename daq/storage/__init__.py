"""HDF5 run files: layout, the SWMR writer, readers and crash recovery (docs/hdf5-layout.md)."""
