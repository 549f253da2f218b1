"""Writers: a loaded (possibly fine-tuned) model back to Keras files, one module per format."""
