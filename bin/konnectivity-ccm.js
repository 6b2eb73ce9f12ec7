#!/usr/bin/env node
import '../dist/ccm-integration/ccm/main.js';
