#!/usr/bin/env node
import '../dist/quickstart/main.js';
